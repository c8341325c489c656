using Asm.Caching.Drivers.FileSystem;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Asm.SessionAdapter.Migration;

/// <summary>
/// The new driver, with sessions it does not know looked up in the previous one and moved over on first touch
/// (see <c>MigrateFrom</c>).
/// </summary>
/// <remarks>
/// <para>
/// A move is: take the record's lock in the previous driver by id and copy it whole
/// (<see cref="ISessionTransferDriver.ExportAsync(string, SessionLease, DateTimeOffset, CancellationToken)"/>), store the copy in the new driver unless it already holds the id
/// (<see cref="ISessionTransferDriver.ImportAsync"/>), then destroy the previous record, leaving its tombstone until the
/// record would have been purged. The lock keeps parallel movers out (they see <see cref="SessionLoadStatus.LockBusy"/>
/// and wait, as for any lock); the tombstone makes a late commit to the previous copy fail instead of being lost; and
/// the copy is stored before the tombstone is written, so whoever finds the tombstone finds the copy. The moved session
/// is then tracked where it now lives: its user's index and its end check are written in the new driver, and its end
/// check in the previous one is taken out, so that its end is reported once, by the new driver's sweep or destroyer.
/// </para>
/// <para>
/// New sessions, and everything written to a moved session, go to the new driver only. A session whose previous copy
/// is locked by a request that is still running is waited for by requests that lock, and read from the previous copy
/// by those that do not.
/// </para>
/// </remarks>
internal sealed class MigratingSessionDriver(
    ISessionDriver current,
    ISessionDriver previous,
    TimeProvider time,
    AsmSessionMetrics metrics,
    ILogger logger,
    TimeSpan moveLease,
    TimeSpan ioTimeout) : ISessionDriver, ISessionTransferDriver
{
    private readonly ISessionTransferDriver _currentTransfer = current as ISessionTransferDriver ?? throw new InvalidOperationException(
        $"MigrateFrom needs a driver that implements {nameof(ISessionTransferDriver)}; {current.GetType().Name} does not.");

    private readonly ISessionTransferDriver _previousTransfer = (ISessionTransferDriver)previous;
    private readonly ISessionTrackingDriver? _currentTracking = current as ISessionTrackingDriver;
    private readonly ISessionTrackingDriver? _previousTracking = previous as ISessionTrackingDriver;

    /// <summary>Set once a move found the previous driver to be the new driver's own storage (see <see cref="MoveAsync"/>).</summary>
    private volatile bool _previousIsCurrent;

    /// <summary>1 once a move found the previous storage read-only and said so, which it does once (see <see cref="CopyFromReadOnlyAsync"/>).</summary>
    private int _readOnlyReported;

    public async ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken)
    {
        var result = await current.LoadAsync(request, cancellationToken).ConfigureAwait(false);
        if (result.Status != SessionLoadStatus.Unknown)
        {
            return result;
        }

        SessionLoadResult answer;
        switch (await MoveAsync(request.Key.Id, waitIfBusy: request.Lease is not null, cancellationToken).ConfigureAwait(false))
        {
            case SessionLoadStatus.Found:
                return await current.LoadAsync(request, cancellationToken).ConfigureAwait(false);
            case SessionLoadStatus.LockBusy when request.Lease is not null:
                return SessionLoadResult.Of(SessionLoadStatus.LockBusy);
            case SessionLoadStatus.LockBusy:
                // A request that takes no lock does not wait for one: it reads the previous copy as it stands.
                answer = await previous.LoadAsync(request, cancellationToken).ConfigureAwait(false);
                if (answer.Status is SessionLoadStatus.Found or SessionLoadStatus.Zombie)
                {
                    return answer;
                }

                break;
            case var status:
                answer = SessionLoadResult.Of(status);
                break;
        }

        // The previous copy may have just been ended by a parallel move, which stores the new copy before it ends the
        // old one: what the new driver says now is the answer, unless it still does not know the session.
        var again = await current.LoadAsync(request, cancellationToken).ConfigureAwait(false);
        return again.Status == SessionLoadStatus.Unknown ? answer : again;
    }

    /// <summary>
    /// Moves session <paramref name="sessionId"/> from the previous driver. Returns <see cref="SessionLoadStatus.Found"/>
    /// when the new driver now holds it, else why the previous driver could not hand it over. A caller that will wait
    /// for a session found locked says so (<paramref name="waitIfBusy"/>), so that the previous driver queues it for
    /// the lock (see <see cref="ISessionTransferDriver.ExportAsync(string, SessionLease, DateTimeOffset, bool, CancellationToken)"/>).
    /// </summary>
    public async ValueTask<SessionLoadStatus> MoveAsync(string sessionId, bool waitIfBusy, CancellationToken cancellationToken) =>
        (await TryMoveAsync(sessionId, waitIfBusy, cancellationToken).ConfigureAwait(false)).Status;

    /// <summary>
    /// As <see cref="MoveAsync"/>, and also whether this call stored the session in the new driver (<c>Moved</c>): a
    /// session the new driver already held (moved by a request or another server) is <see cref="SessionLoadStatus.Found"/>
    /// but not moved by this call.
    /// </summary>
    public async ValueTask<(SessionLoadStatus Status, bool Moved)> TryMoveAsync(string sessionId, bool waitIfBusy, CancellationToken cancellationToken)
    {
        if (_previousIsCurrent)
        {
            // One storage: a session the new driver does not hold, the previous one does not hold either.
            return (SessionLoadStatus.Unknown, false);
        }

        var now = time.GetUtcNow();
        var export = await _previousTransfer.ExportAsync(sessionId, SessionLease.Create(moveLease), now, waitIfBusy, cancellationToken).ConfigureAwait(false);
        if (export is { Status: SessionLoadStatus.Found, Snapshot: { } frozen, Lease: null })
        {
            return (SessionLoadStatus.Found, await CopyFromReadOnlyAsync(frozen, now, cancellationToken).ConfigureAwait(false));
        }

        if (export is not { Status: SessionLoadStatus.Found, Snapshot: { } snapshot, Lease: { } lease })
        {
            return (export.Status, false);
        }

        try
        {
            var stored = await _currentTransfer.ImportAsync(snapshot, now, cancellationToken).ConfigureAwait(false);
            if (!stored && await current.RenewLockAsync(sessionId, lease, now, cancellationToken).ConfigureAwait(false))
            {
                // The new driver holds the lease the previous one has just granted: they are one storage (MigrateFrom
                // names the new driver's own). The session is where it should be; ending its "previous copy" would end it.
                if (!_previousIsCurrent)
                {
                    _previousIsCurrent = true;
                    Log.PreviousIsCurrent(logger);
                }

                await current.ReleaseLockAsync(sessionId, lease, cancellationToken).ConfigureAwait(false);
                return (SessionLoadStatus.Found, false);
            }

            var purgeAt = snapshot.PurgeAt > now ? snapshot.PurgeAt : now;
            try
            {
                await previous.DestroyAsync(sessionId, now, purgeAt, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (stored)
            {
                // A failed destroy may have been applied all the same (its answer lost, or the request's token cancelled
                // after it was sent): the previous copy says which, read under a timeout of its own.
                using var ownTimeout = new CancellationTokenSource(ioTimeout, time);
                var live = await PreviousCopyIsLiveAsync(snapshot, now, ex, ownTimeout.Token).ConfigureAwait(false);
                if (live is true)
                {
                    // Still live: the copy stored here is taken back, or the session would live in both.
                    await UndoImportAsync(sessionId, now, ex).ConfigureAwait(false);
                    throw;
                }

                // The move stands (taking the new copy back could lose the session, had the previous one been ended),
                // and what is left of it no longer depends on the request's token, nor on the read's timeout, which a
                // previous storage that does not answer has used up. A previous storage that has just failed twice
                // (live is null) keeps its end check; one that answered is asked for it, and may still fail.
                using var finishing = new CancellationTokenSource(ioTimeout, time);
                await FinishMoveAsync(snapshot, stored, claimPreviousEndCheck: live is false, finishing.Token, previousJustFailed: true).ConfigureAwait(false);
                return (SessionLoadStatus.Found, stored);
            }

            await FinishMoveAsync(snapshot, stored, claimPreviousEndCheck: true, cancellationToken).ConfigureAwait(false);
            return (SessionLoadStatus.Found, stored);
        }
        catch
        {
            // Give the previous copy back at once rather than leave it locked for a whole lease. A storage that failed
            // may refuse the release too: the lease then ends by itself, and the first failure is the one reported.
            try
            {
                await previous.ReleaseLockAsync(sessionId, lease, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.MoveLockNotReleased(logger, SessionKey.Hash(sessionId), ex);
            }

            throw;
        }
    }

    /// <summary>
    /// Tracks a moved session where it now lives: when this move <paramref name="stored"/> it, tracked in the new driver
    /// (see <see cref="TrackMovedAsync"/>), first, since it is served from there; then its end check taken out of the
    /// previous driver's schedule (unless <paramref name="claimPreviousEndCheck"/> is false). After the previous
    /// storage <paramref name="previousJustFailed"/> to end the copy, that claim may fail too: it is logged (event 57)
    /// rather than fail a move that stands.
    /// </summary>
    private async ValueTask FinishMoveAsync(
        SessionSnapshot snapshot, bool stored, bool claimPreviousEndCheck, CancellationToken cancellationToken, bool previousJustFailed = false)
    {
        if (stored)
        {
            await TrackMovedAsync(snapshot, cancellationToken).ConfigureAwait(false);
        }

        if (claimPreviousEndCheck && _previousTracking is { } previousTracking)
        {
            try
            {
                await previousTracking.ClaimEndCheckAsync(snapshot.SessionId, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (previousJustFailed)
            {
                Log.PreviousEndCheckNotClaimed(logger, SessionKey.Hash(snapshot.SessionId), ex);
            }
        }
    }

    /// <summary>
    /// Moves a session that the previous storage handed over without a lock because it takes no writes (a read-only
    /// file system, see <see cref="SessionExportResult.Lease"/>): nobody can lock, change or end its previous copy there,
    /// so it is copied and left as it is; the new driver's copy is the one served from then on, since the previous
    /// driver is asked only for sessions the new one does not hold.
    /// </summary>
    /// <returns>Whether the copy was stored (the new driver did not hold the session yet).</returns>
    private async ValueTask<bool> CopyFromReadOnlyAsync(SessionSnapshot snapshot, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var stored = await _currentTransfer.ImportAsync(snapshot, now, cancellationToken).ConfigureAwait(false);
        if (stored)
        {
            await TrackMovedAsync(snapshot, cancellationToken).ConfigureAwait(false);
            if (Interlocked.Exchange(ref _readOnlyReported, 1) == 0)
            {
                Log.PreviousStorageReadOnly(logger);
            }

            var hash = SessionKey.Hash(snapshot.SessionId);
            Log.PreviousCopyLeftReadOnly(logger, hash);
        }

        return stored;
    }

    /// <summary>Tracks a session just stored in the new driver as its own (user index, end check), and reports the move.</summary>
    private async ValueTask TrackMovedAsync(SessionSnapshot snapshot, CancellationToken cancellationToken)
    {
        var sessionId = snapshot.SessionId;
        if (_currentTracking is { } tracking)
        {
            if (snapshot.UserId is { } userId)
            {
                await tracking.AddToUserIndexAsync(userId, sessionId, cancellationToken).ConfigureAwait(false);
            }

            var endsAt = StoredSessionInfo.EndOf(snapshot.IdleExpiresAt, snapshot.AbsoluteExpiresAt);
            await tracking.ScheduleEndCheckAsync(sessionId, endsAt, cancellationToken).ConfigureAwait(false);
        }

        metrics.Migrated();
        var hash = SessionKey.Hash(sessionId);
        Log.SessionMigrated(logger, hash);
    }

    /// <summary>
    /// Whether the previous copy of the session in <paramref name="snapshot"/> is still live after ending it failed
    /// (<paramref name="failure"/>), read once without a lock (a load that slides nothing): <see langword="false"/> when
    /// it is ended (a tombstone, or no record), so that the failed destroy was applied; <see langword="null"/> when that
    /// cannot be told (the read fails too, or finds the record unreadable).
    /// </summary>
    private async ValueTask<bool?> PreviousCopyIsLiveAsync(SessionSnapshot snapshot, DateTimeOffset now, Exception failure, CancellationToken cancellationToken)
    {
        var hash = SessionKey.Hash(snapshot.SessionId);
        SessionLoadStatus status;
        try
        {
            var request = new SessionLoadRequest { Key = SessionKey.Create(snapshot.SessionId, snapshot.Secret), Now = now, IdleTimeout = TimeSpan.Zero };
            status = (await previous.LoadAsync(request, cancellationToken).ConfigureAwait(false)).Status;
        }
        catch (Exception ex)
        {
            Log.MoveEndUnconfirmed(logger, hash, new AggregateException(failure, ex));
            return null;
        }

        switch (status)
        {
            case SessionLoadStatus.Found or SessionLoadStatus.Zombie:
                return true;
            case SessionLoadStatus.Corrupt:
                Log.MoveEndUnconfirmed(logger, hash, failure);
                return null;
            default:
                Log.MoveEndConfirmed(logger, hash, failure);
                return false;
        }
    }

    /// <summary>
    /// Takes back the copy of session <paramref name="sessionId"/> this move has just stored in the new driver, once
    /// ending the previous copy failed (<paramref name="failure"/>): a destroy whose tombstone ends at once leaves no
    /// record, so the session is again where it was, the previous driver alone, and its next use moves it again. A
    /// request that read the new copy in between finds it gone and its commit is refused.
    /// </summary>
    private async ValueTask UndoImportAsync(string sessionId, DateTimeOffset now, Exception failure)
    {
        var hash = SessionKey.Hash(sessionId);
        try
        {
            await current.DestroyAsync(sessionId, now, now, CancellationToken.None).ConfigureAwait(false);
            Log.MoveUndone(logger, hash, failure);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.MoveNotUndone(logger, hash, new AggregateException(failure, ex));
        }
    }

    /// <summary>
    /// The tracking record of session <paramref name="sessionId"/>, which the new driver does not hold: moved first, as
    /// on a first use, then read from the new driver; one locked in the previous driver by a request still running
    /// there is read where it is. <see langword="null"/> when neither driver has it.
    /// </summary>
    public async ValueTask<StoredSessionInfo?> MoveForInfoAsync(string sessionId, CancellationToken cancellationToken) =>
        await MoveOrEndAsync(sessionId, cancellationToken).ConfigureAwait(false) switch
        {
            SessionLoadStatus.Found when _currentTracking is { } tracking => await tracking.GetInfoAsync(sessionId, cancellationToken).ConfigureAwait(false),
            SessionLoadStatus.LockBusy when _previousTracking is { } tracking => await tracking.GetInfoAsync(sessionId, cancellationToken).ConfigureAwait(false),
            _ => null,
        };

    /// <summary>
    /// Moves every session the previous driver's index lists for <paramref name="userId"/>, so that the new driver's
    /// index lists them, and takes them out of the previous index. Returns the tracking records of those still locked
    /// in the previous driver by a request running there, which stay in its index and are read where they are.
    /// </summary>
    public async ValueTask<IReadOnlyList<StoredSessionInfo>> MoveUserSessionsAsync(string userId, CancellationToken cancellationToken)
    {
        if (_previousTracking is not { } tracking || _previousIsCurrent)
        {
            return [];
        }

        List<StoredSessionInfo> locked = [];
        List<string> done = [];
        foreach (var sessionId in await tracking.GetUserIndexAsync(userId, cancellationToken).ConfigureAwait(false))
        {
            if (await MoveOrEndAsync(sessionId, cancellationToken).ConfigureAwait(false) != SessionLoadStatus.LockBusy)
            {
                done.Add(sessionId);
            }
            else if (await tracking.GetInfoAsync(sessionId, cancellationToken).ConfigureAwait(false) is { } info)
            {
                locked.Add(info);
            }
        }

        if (done.Count > 0 && !_previousIsCurrent)
        {
            await UnlessReadOnlyAsync(() => tracking.RemoveFromUserIndexAsync(userId, done, cancellationToken)).ConfigureAwait(false);
        }

        return locked;
    }

    /// <summary>
    /// Moves session <paramref name="sessionId"/> as <see cref="MoveAsync"/> does, for a caller that does not wait for
    /// its lock. One that the previous driver holds past its end by this instance's clock (the export says
    /// <see cref="SessionLoadStatus.Expired"/>, whoever holds its lock) is ended there, as the new driver's sessions are
    /// when a listing or a lookup finds them ended (<see cref="ISessionTrackingDriver.ExpireSessionAsync"/>): an old
    /// server whose clock is behind must not serve it on, nor its lock holder commit to it, once it has left the user's
    /// index.
    /// </summary>
    private async ValueTask<SessionLoadStatus> MoveOrEndAsync(string sessionId, CancellationToken cancellationToken)
    {
        var status = await MoveAsync(sessionId, waitIfBusy: false, cancellationToken).ConfigureAwait(false);
        if (status == SessionLoadStatus.Expired
            && _previousTracking is { } tracking
            && await tracking.GetInfoAsync(sessionId, cancellationToken).ConfigureAwait(false) is { Destroyed: false } info
            && !info.IsLiveAt(time.GetUtcNow()))
        {
            // Refused when a request used it since it was read (its idle expiry moved): its next listing or lookup judges it again.
            await UnlessReadOnlyAsync(async () => await tracking.ExpireSessionAsync(sessionId, info.IdleExpiresAt, cancellationToken).ConfigureAwait(false))
                .ConfigureAwait(false);
        }

        return status;
    }

    /// <summary>
    /// Takes the end check of a session out of the previous driver's schedule (see <see cref="ISessionTrackingDriver.ClaimEndCheckAsync"/>).
    /// A read-only previous storage has none to take: nobody can take its end checks, and its sessions' ends are
    /// reported by the new driver, which tracks them from their move on.
    /// </summary>
    public async ValueTask<bool> ClaimPreviousEndCheckAsync(string sessionId, CancellationToken cancellationToken)
    {
        var claimed = false;
        if (_previousTracking is { } tracking)
        {
            await UnlessReadOnlyAsync(async () => claimed = await tracking.ClaimEndCheckAsync(sessionId, cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
        }

        return claimed;
    }

    public async ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken)
    {
        var status = await current.CommitAsync(request, cancellationToken).ConfigureAwait(false);

        // A lockless delta to a session that was read from its previous copy goes there, or fails if it has moved since.
        return status == SessionCommitStatus.NotFound && request is { CreateWithSecret: null, Lease: null }
            ? await previous.CommitAsync(request, cancellationToken).ConfigureAwait(false)
            : status;
    }

    public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        current.RenewLockAsync(sessionId, lease, now, cancellationToken);

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) =>
        current.ReleaseLockAsync(sessionId, lease, cancellationToken);

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, ILockReleaseObserver? observer, CancellationToken cancellationToken) =>
        current.ReleaseLockAsync(sessionId, lease, observer, cancellationToken);

    public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) =>
        current.RegenerateAsync(request, cancellationToken);

    public async ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken)
    {
        await current.DestroyAsync(sessionId, now, tombstoneExpiresAt, cancellationToken).ConfigureAwait(false);
        try
        {
            await previous.DestroyAsync(sessionId, now, tombstoneExpiresAt, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException ex) when (ReadOnlyFileSystem.IsCauseOf(ex))
        {
            // A previous copy on read-only storage cannot be ended: once the tombstone here is purged, the next use of
            // the old cookie would move it again. The tombstone lasts until that copy has ended by itself.
            if (_previousTracking is { } tracking
                && await tracking.GetInfoAsync(sessionId, cancellationToken).ConfigureAwait(false) is { Destroyed: false } info
                && info.EndsAt > tombstoneExpiresAt)
            {
                await current.DestroyAsync(sessionId, now, info.EndsAt, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="write"/> to the previous storage, unless that storage is read-only: nobody can then use,
    /// change or end what it holds, so a write there that cannot be made is not needed (a log-out, a listing of a
    /// user's devices on the new driver go on without it). Any other failure is thrown.
    /// </summary>
    private static async ValueTask UnlessReadOnlyAsync(Func<ValueTask> write)
    {
        try
        {
            await write().ConfigureAwait(false);
        }
        catch (IOException ex) when (ReadOnlyFileSystem.IsCauseOf(ex))
        {
            // Left as it is, as the moves from that storage leave every copy.
        }
    }

    /// <summary>Wakes on a release in either driver: a session waited for may still be locked in the previous one.</summary>
    public async Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var first = await Task.WhenAny(
            current.WaitForReleaseAsync(sessionId, maxWait, either.Token),
            previous.WaitForReleaseAsync(sessionId, maxWait, either.Token)).ConfigureAwait(false);
        await either.CancelAsync().ConfigureAwait(false);
        await first.ConfigureAwait(false);
    }

    public ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        _currentTransfer.ExportAsync(sessionId, lease, now, cancellationToken);

    public ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, bool waitIfBusy, CancellationToken cancellationToken) =>
        _currentTransfer.ExportAsync(sessionId, lease, now, waitIfBusy, cancellationToken);

    public ValueTask<bool> ImportAsync(SessionSnapshot snapshot, DateTimeOffset now, CancellationToken cancellationToken) =>
        _currentTransfer.ImportAsync(snapshot, now, cancellationToken);
}
