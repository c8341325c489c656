using Asm.Caching.Sessions;
using Asm.SessionAdapter.Storage;

namespace Asm.SessionAdapter.Sessions;

/// <summary>
/// The lock a request holds on its session: taking it (waiting, without spinning, for another holder to release it),
/// renewing its lease on the application's <see cref="TimeProvider"/> while the request runs, and giving it back
/// (released by the final commit, given back when the session is not adopted after all, abandoned when a load or a
/// commit failed and storage may or may not have granted it). Requests of one process wait for their turn in
/// <see cref="LocalLockQueue"/> first, so that only one of them at a time asks the storage; the turn is kept with the
/// lease and passed on once the lease is given back. With the request's <c>profiles</c>, a key the storage answers
/// "busy" is first loaded without the lease: one that may not open the session (a zombie key of another client) is
/// refused at once, not after waiting for the owner's lock.
/// </summary>
internal sealed class SessionLockHolder(
    GuardedSessionDriver storage,
    AsmSessionOptions options,
    TimeProvider time,
    SessionTelemetry telemetry,
    LocalLockQueue? queue = null,
    RenewalTimers? renewalTimers = null,
    SessionProfileCheck? profiles = null) : ILockReleaseObserver
{
    private readonly LocalLockQueue _queue = queue ?? new LocalLockQueue(time);
    private readonly RenewalTimers _renewalTimers = renewalTimers ?? new RenewalTimers(time);
    private string _sessionId = "";
    private RenewalTimers.Timer? _renewal;
    private ExecutionContext? _renewalContext;
    private LocalLockQueue.Turn _turn;
    private volatile bool _closed;

    /// <summary>The lease held, or <see langword="null"/> when the request holds no lock.</summary>
    public SessionLease? Lease { get; private set; }

    /// <summary>Whether the request's hold has ended for good (see <see cref="Close"/>).</summary>
    public bool IsClosed => _closed;

    /// <summary>Whether the lease is being renewed.</summary>
    public bool IsRenewing => _renewal is not null;

    /// <summary>
    /// Loads session <paramref name="key"/> with a lease, waiting for the current holder to release it, up to
    /// <see cref="AsmSessionOptions.LockWaitTimeout"/>. Does not hold the lease: the caller holds it, or gives it back
    /// when the hold has closed meanwhile, with <see cref="HoldOrGiveBackAsync"/>.
    /// </summary>
    /// <returns>
    /// The load's result, or <see langword="null"/> when the wait timed out and
    /// <see cref="LockWaitFailure.ContinueReadOnly"/> goes on without the lock.
    /// </returns>
    /// <exception cref="SessionLockTimeoutException">The wait timed out, and <see cref="LockWaitFailure.Throw"/> is set.</exception>
    public async ValueTask<SessionLoadResult?> LoadLockedAsync(SessionKey key, SessionLockMode mode, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        var mayWait = false;
        if (_queue.IsHeldWithAnotherKey(key))
        {
            // A request of this process holds the session's lock with another key. This one may open nothing (replaced,
            // destroyed): the storage says so at once, as it does to a request on another server, and the request must
            // not learn it only after waiting for the owner (a wait that tells the owner is busy, and may time out).
            if (await RefusedWithoutWaitingAsync(key, cancellationToken).ConfigureAwait(false) is { } refused)
            {
                return refused;
            }

            mayWait = true;
        }

        if (await _queue.EnterAsync(key.Id, options.LockWaitTimeout, cancellationToken).ConfigureAwait(false) is not { } turn)
        {
            return TimedOut(key, mode, time.GetElapsedTime(started));
        }

        _turn = turn;
        turn.Presented(key.Value);
        SessionLoadResult? result;
        DateTimeOffset loadedAt;
        try
        {
            (result, loadedAt) = await LoadInTurnAsync(key, mode, started, turn.Queued, mayWait, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            EndTurn();
            throw;
        }

        // The turn goes with the lease: kept while the request holds the lock, passed on at once otherwise.
        if (result?.Lease is not { } lease)
        {
            EndTurn();
            return result;
        }

        // As far as this process knows, the lease runs from the load that was granted it.
        turn.Extend(loadedAt + lease.Duration);
        return result;
    }

    /// <summary>The storage side of <see cref="LoadLockedAsync"/>, once this request's turn has come; also when the load that answered was sent.</summary>
    private async ValueTask<(SessionLoadResult? Result, DateTimeOffset LoadedAt)> LoadInTurnAsync(
        SessionKey key, SessionLockMode mode, long started, bool queued, bool mayWait, CancellationToken cancellationToken)
    {
        var lease = SessionLease.Create(options.LockLease);
        for (var attempt = 0; ; attempt++)
        {
            var request = new SessionLoadRequest { Key = key, Now = time.GetUtcNow(), IdleTimeout = options.IdleTimeout, Lease = lease };
            SessionLoadResult result;
            try
            {
                result = await storage.LoadAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SessionStorageException)
            {
                // The storage may have granted the lease before the answer was lost: give it back by its token, so
                // that the session is not blocked for a whole lease by a request that is gone.
                await AbandonAsync(key.Id, lease).ConfigureAwait(false);
                throw;
            }

            if (result.Status != SessionLoadStatus.LockBusy)
            {
                if (attempt > 0 || queued)
                {
                    telemetry.LockWaited(time.GetElapsedTime(started), acquired: true);
                }

                return (result, request.Now);
            }

            if (!mayWait && !_closed)
            {
                // The storage tells a busy lock before it could tell that the key's client may not use it: a zombie key
                // of another client is refused here, as it is when this process holds the lock (LoadLockedAsync).
                if (await RefusedWithoutWaitingAsync(key, cancellationToken).ConfigureAwait(false) is { } refused)
                {
                    return (refused, request.Now);
                }

                mayWait = true;
            }

            var waited = time.GetElapsedTime(started);
            var remaining = options.LockWaitTimeout - waited;
            if (remaining <= TimeSpan.Zero)
            {
                return (TimedOut(key, mode, waited), request.Now);
            }

            // Releases wake a waiter at once; the growing bound covers holders in other processes that cannot signal.
            var bound = TimeSpan.FromMilliseconds(Math.Min(100, 2 << Math.Min(attempt, 6)));
            await storage.WaitForReleaseAsync(key.Id, remaining < bound ? remaining : bound, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Loads <paramref name="key"/> without the lease and returns what it found when the key may not wait for the lock
    /// (it opens nothing, or is a zombie key of another client: <see cref="SessionProfileCheck.MayWaitForLock"/>);
    /// <see langword="null"/> when it may, or when no profiles were given to judge by.
    /// </summary>
    private async ValueTask<SessionLoadResult?> RefusedWithoutWaitingAsync(SessionKey key, CancellationToken cancellationToken)
    {
        if (profiles is not { } check)
        {
            return null;
        }

        var unlocked = await storage.LoadAsync(
            new SessionLoadRequest { Key = key, Now = time.GetUtcNow(), IdleTimeout = options.IdleTimeout }, cancellationToken).ConfigureAwait(false);
        return check.MayWaitForLock(unlocked) ? null : unlocked;
    }

    /// <summary>The end of a wait that timed out: <see langword="null"/> to go on read-only, or the exception.</summary>
    private SessionLoadResult? TimedOut(SessionKey key, SessionLockMode mode, TimeSpan waited)
    {
        telemetry.LockTimeout(key.Id, waited, mode);
        if (options.LockWaitFailure == LockWaitFailure.ContinueReadOnly)
        {
            return null;
        }

        throw new SessionLockTimeoutException(
            $"Waited {waited.TotalMilliseconds:0} ms (AsmSessionOptions.LockWaitTimeout) for the {mode} lock of session " +
            $"{telemetry.Hash(key.Id)}, which another request holds. Mark endpoints that only read the session with " +
            "[SessionLock(SessionLockMode.ReadOnly)] so they do not wait, or set LockWaitFailure to ContinueReadOnly.");
    }

    /// <summary>Holds <paramref name="lease"/> on session <paramref name="sessionId"/>, renewing it every third of its duration.</summary>
    /// <returns>
    /// <see langword="false"/> when the hold has closed (<see cref="Close"/>, the start of the request's final commit,
    /// ran since the lease was granted): the lease is not held, and the caller must give it back (<see cref="HoldOrGiveBackAsync"/>).
    /// </returns>
    public bool Hold(string sessionId, SessionLease lease)
    {
        // Orders Hold and Close, which run on different threads when a task the request did not await takes the lock as
        // the request ends: a lease is either held before the hold closes (and the final commit releases it) or refused
        // after (and given back by whoever took it), never taken in between and kept. The holder is private to its
        // request, so its own monitor serves, and costs the request no allocation.
        lock (this)
        {
            if (_closed)
            {
                return false;
            }

            StopRenewal();
            _sessionId = sessionId;
            Lease = lease;
            _renewalContext = ExecutionContext.Capture();
            _renewal = _renewalTimers.Start(this, lease.Duration / 3);
            return true;
        }
    }

    /// <summary>
    /// Holds <paramref name="lease"/> (see <see cref="Hold"/>), or, when the request's final commit closed the hold after
    /// the lease was granted (a task the request did not await took the lock as it ended), gives it back at once: the
    /// final commit releases only what was held when it closed the hold, and nothing else would release this one
    /// before its lease ends. The one place a granted lease is either held or given back.
    /// </summary>
    /// <returns>
    /// Whether the lease is held. <see langword="false"/> tells the caller that the request has ended: the final commit
    /// changed the session's state before it closed the hold, under the same monitor, so the caller sees it ended.
    /// </returns>
    public async ValueTask<bool> HoldOrGiveBackAsync(string sessionId, SessionLease lease)
    {
        if (Hold(sessionId, lease))
        {
            return true;
        }

        await AbandonAsync(sessionId, lease).ConfigureAwait(false);
        return false;
    }

    /// <summary>Stops renewing the lease; it is still held (and released by the final commit) until <see cref="Forget"/>.</summary>
    public void StopRenewal()
    {
        Interlocked.Exchange(ref _renewal, null)?.Stop();
    }

    /// <summary>
    /// Stops renewing and forgets the lease, without a storage call: storage refused it or no longer has it, or the
    /// caller gives it back (then with <paramref name="keepTurn"/>, and <see cref="EndTurn"/> once it has).
    /// </summary>
    /// <returns>The lease that was held, if any.</returns>
    public SessionLease? Forget(bool keepTurn = false)
    {
        StopRenewal();
        var lease = Lease;
        Lease = null;
        if (!keepTurn)
        {
            EndTurn();
        }

        return lease;
    }

    /// <summary>
    /// Passes this request's turn in <see cref="LocalLockQueue"/> on to the next request of the process that waits for
    /// the session's lock: the lease is given back (or was never taken). Does nothing the second time.
    /// </summary>
    /// <remarks>
    /// A renewal that finds the lease lost ends the turn from its timer while the request may end it too: the other call
    /// may then read the turn torn (its line beside number 0, or no line), which the queue ignores as no turn of its own.
    /// </remarks>
    public void EndTurn()
    {
        var turn = _turn;
        _turn = default;
        turn.Leave();
    }

    /// <summary>
    /// A driver sent the release of this request's lease ahead of whatever the process sends to the session after it:
    /// the turn passes on at once, and the next request's load follows the release on its way to storage.
    /// </summary>
    void ILockReleaseObserver.ReleaseSent() => EndTurn();

    /// <summary>
    /// Closes the hold for good, as the middleware's final commit starts, before it reads the lease it releases: a
    /// lease granted from then on (to a load from a task the request did not await) is given back by whoever was
    /// granted it (<see cref="HoldOrGiveBackAsync"/>). The turn is kept until the lease is given back
    /// (<see cref="ReleaseAsync"/>).
    /// </summary>
    public void Close() => SetClosed(true);

    /// <summary>
    /// Opens the closed hold again while an event handler of the final commit may write the session
    /// (<c>OnSessionCreated</c>): a lease its write takes is held, and that commit releases it.
    /// </summary>
    public void Reopen() => SetClosed(false);

    private void SetClosed(bool closed)
    {
        lock (this) // See Hold.
        {
            _closed = closed;
        }
    }

    /// <summary>
    /// Releases the lease, if one is held (a session this request does not adopt after all), within its own
    /// <see cref="AsmSessionOptions.IOTimeout"/>: a client that went away does not leave the session locked for a lease.
    /// </summary>
    public Task ReleaseAsync()
    {
        if (Forget(keepTurn: true) is { } lease)
        {
            return AbandonAsync(_sessionId, lease);
        }

        EndTurn();
        return Task.CompletedTask;
    }

    /// <summary>
    /// Gives back a lease storage may have granted when the answer was lost, by its token, within its own
    /// <see cref="AsmSessionOptions.IOTimeout"/>; a failure is logged (the lease then ends by itself).
    /// </summary>
    public async Task AbandonAsync(string sessionId, SessionLease lease)
    {
        try
        {
            using var timeout = new CancellationTokenSource(options.IOTimeout);
            await storage.Inner.ReleaseLockAsync(sessionId, lease, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            telemetry.AbandonFailed(sessionId, ex);
        }
        finally
        {
            EndTurn();
        }
    }

    /// <summary>A renewal timer's tick: renews the lease with the execution context of the request that took it.</summary>
    internal void OnRenewalTick()
    {
        if (_renewalContext is { } context)
        {
            ExecutionContext.Run(context, static state => _ = ((SessionLockHolder)state!).RenewAsync(), this);
        }
        else
        {
            _ = RenewAsync();
        }
    }

    /// <summary>Renews the lease once; a lease storage no longer grants is not renewed again (the commit's fence check refuses the write).</summary>
    internal async Task RenewAsync()
    {
        if (Lease is not { } lease)
        {
            return;
        }

        var turn = _turn;
        try
        {
            var third = lease.Duration / 3;
            using var timeout = new CancellationTokenSource(options.IOTimeout < third && options.IOTimeout != Timeout.InfiniteTimeSpan ? options.IOTimeout : third, time);
            var now = time.GetUtcNow();
            var renewed = await storage.Inner.RenewLockAsync(_sessionId, lease, now, timeout.Token).ConfigureAwait(false);
            if (!ReferenceEquals(Lease, lease))
            {
                // The lease was given back (or replaced by a new one) while this renewal ran: the answer is about the old one.
                return;
            }

            if (renewed)
            {
                turn.Extend(now + lease.Duration);
            }
            else
            {
                // Lost: the next request of this process may try (the commit's fence check refuses this one's write).
                StopRenewal();
                EndTurn();
            }
        }
        catch (Exception ex)
        {
            telemetry.RenewFailed(_sessionId, ex);
        }
    }
}
