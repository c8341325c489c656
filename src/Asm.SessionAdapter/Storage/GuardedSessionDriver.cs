using Asm.Caching.Sessions;
using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter.Storage;

/// <summary>
/// The driver as a request's session calls it: every operation under <see cref="AsmSessionOptions.IOTimeout"/>, a
/// failure as a <see cref="SessionStorageException"/> (a timeout as an <see cref="OperationCanceledException"/>) that
/// says what failed, and the caller resumed off the driver's thread. Composed outside the encryption and migration
/// decorators, for sessions only (the lifecycle and the manager call the driver they wrap).
/// </summary>
/// <remarks>
/// An operation that completes later resumes on the thread pool, never inline on the thread that completed it: a
/// driver's I/O thread (StackExchange.Redis completes its replies in order on one) must not go on to run the
/// request, which may then block on the session (<see cref="ISession.Set"/> takes the lock synchronously in
/// <see cref="SessionLockMode.LockOnWrite"/>) and wait for a reply that thread can no longer deliver.
/// Lease renewal and the give-back of a lease whose load failed call <see cref="Inner"/>: they have bounds of their
/// own and only log their failures. Waiting for a release is bounded by its caller and passes through.
/// <para>
/// An operation that completes at once (the in-memory driver's always do) costs no timer: the timeout's clock is
/// started only when the driver returns an operation still running, and the operation's state is passed, not captured.
/// The timeout's source is reused by the thread's next operation when it ended uncancelled and the caller's token
/// cannot be cancelled (<see cref="CancellationTokenSource.TryReset"/>), so that a storage call allocates none.
/// </para>
/// </remarks>
internal sealed class GuardedSessionDriver(ISessionDriver inner, TimeSpan ioTimeout) : ISessionDriver
{
    [ThreadStatic]
    private static CancellationTokenSource? t_spareTimeout;

    /// <summary>The driver this one guards.</summary>
    public ISessionDriver Inner => inner;

    public ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken) =>
        RunAsync("loading", request.Key.Id, (inner, request), static (s, ct) => s.inner.LoadAsync(s.request, ct), cancellationToken);

    public ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken) =>
        RunAsync(request.CreateWithSecret is null ? "committing" : "creating", request.SessionId, (inner, request), static (s, ct) => s.inner.CommitAsync(s.request, ct), cancellationToken);

    public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        RunAsync("renewing the lock of", sessionId, (inner, sessionId, lease, now), static (s, ct) => s.inner.RenewLockAsync(s.sessionId, s.lease, s.now, ct), cancellationToken);

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) =>
        ReleaseLockAsync(sessionId, lease, observer: null, cancellationToken);

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, ILockReleaseObserver? observer, CancellationToken cancellationToken) =>
        RunAsync("releasing the lock of", sessionId, (inner, sessionId, lease, observer), static (s, ct) => s.inner.ReleaseLockAsync(s.sessionId, s.lease, s.observer, ct), cancellationToken);

    public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) =>
        RunAsync("regenerating", request.Key.Id, (inner, request), static (s, ct) => s.inner.RegenerateAsync(s.request, ct), cancellationToken);

    public ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) =>
        RunAsync("destroying", sessionId, (inner, sessionId, now, tombstoneExpiresAt), static (s, ct) => s.inner.DestroyAsync(s.sessionId, s.now, s.tombstoneExpiresAt, ct), cancellationToken);

    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
        inner.WaitForReleaseAsync(sessionId, maxWait, cancellationToken);

    /// <summary>
    /// Runs an operation of session <paramref name="sessionId"/> that returns nothing, guarded as a driver call;
    /// <paramref name="what"/> says what it does, as the messages say it ("destroying", "binding").
    /// </summary>
    public ValueTask RunAsync(string what, string sessionId, Func<CancellationToken, ValueTask> operation, CancellationToken cancellationToken) =>
        RunAsync(what, sessionId, operation, static (op, ct) => op(ct), cancellationToken);

    /// <summary>
    /// Runs an operation of session <paramref name="sessionId"/>, guarded as a driver call; <paramref name="what"/>
    /// says what it does, as the messages say it ("loading", "importing").
    /// </summary>
    public ValueTask<T> RunAsync<T>(string what, string sessionId, Func<CancellationToken, ValueTask<T>> operation, CancellationToken cancellationToken) =>
        RunAsync(what, sessionId, operation, static (op, ct) => op(ct), cancellationToken);

    /// <summary>As <see cref="RunAsync{T}(string, string, Func{CancellationToken, ValueTask{T}}, CancellationToken)"/>, with the operation's state passed in, not captured.</summary>
    private async ValueTask<T> RunAsync<TState, T>(
        string what, string sessionId, TState state, Func<TState, CancellationToken, ValueTask<T>> operation, CancellationToken cancellationToken)
    {
        var timeout = RentTimeout(cancellationToken);
        try
        {
            var pending = operation(state, timeout.Token);
            if (pending.IsCompleted)
            {
                return pending.Result;
            }

            timeout.CancelAfter(ioTimeout);
            return await pending.AsTask().ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw TimedOut(what, ex, timeout.Token);
        }
        catch (Exception ex) when (ex is not (OperationCanceledException or SessionStorageException))
        {
            throw Failed(what, sessionId, ex);
        }
        finally
        {
            ReturnTimeout(timeout, cancellationToken);
        }
    }

    /// <summary>As <see cref="RunAsync{TState, T}"/>, for an operation that returns nothing.</summary>
    private ValueTask RunAsync<TState>(
        string what, string sessionId, TState state, Func<TState, CancellationToken, ValueTask> operation, CancellationToken cancellationToken)
    {
        var pending = RunAsync(what, sessionId, (state, operation), static async (s, ct) =>
        {
            await s.operation(s.state, ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);
        return pending.IsCompletedSuccessfully ? default : new ValueTask(pending.AsTask());
    }

    /// <summary>
    /// The source of an operation's timeout token: linked to the caller's token when it can be cancelled, else a plain
    /// one, reused from this thread's last operation when that one ended uncancelled.
    /// </summary>
    private static CancellationTokenSource RentTimeout(CancellationToken cancellationToken)
    {
        if (cancellationToken.CanBeCanceled)
        {
            return CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        }

        var spare = t_spareTimeout;
        t_spareTimeout = null;
        return spare ?? new CancellationTokenSource();
    }

    /// <summary>
    /// Ends an operation's timeout: a plain source that was not cancelled is reset (its timer stopped, and what the
    /// operation registered on its token never called) and kept for this thread's next operation; any other is disposed.
    /// </summary>
    private static void ReturnTimeout(CancellationTokenSource timeout, CancellationToken cancellationToken)
    {
        if (!cancellationToken.CanBeCanceled && t_spareTimeout is null && timeout.TryReset())
        {
            t_spareTimeout = timeout;
            return;
        }

        timeout.Dispose();
    }

    /// <summary>An operation the I/O timeout (not the caller) cancelled.</summary>
    private OperationCanceledException TimedOut(string what, OperationCanceledException ex, CancellationToken timeout) =>
        new($"Timed out {what} the session (AsmSessionOptions.IOTimeout is {ioTimeout}).", ex, timeout);

    /// <summary>An operation that failed, as a <see cref="SessionStorageException"/> that says what failed.</summary>
    private static SessionStorageException Failed(string what, string sessionId, Exception ex) =>
        new($"Failed {what} session {SessionKey.Hash(sessionId)}: {ex.Message}", ex);
}
