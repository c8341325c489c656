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
/// </remarks>
internal sealed class GuardedSessionDriver(ISessionDriver inner, TimeSpan ioTimeout) : ISessionDriver
{
    /// <summary>The driver this one guards.</summary>
    public ISessionDriver Inner => inner;

    public ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken) =>
        RunAsync("loading", request.Key.Id, ct => inner.LoadAsync(request, ct), cancellationToken);

    public ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken) =>
        RunAsync(request.CreateWithSecret is null ? "committing" : "creating", request.SessionId, ct => inner.CommitAsync(request, ct), cancellationToken);

    public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        RunAsync("renewing the lock of", sessionId, ct => inner.RenewLockAsync(sessionId, lease, now, ct), cancellationToken);

    public async ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) =>
        await RunAsync("releasing the lock of", sessionId, ct => inner.ReleaseLockAsync(sessionId, lease, ct), cancellationToken).ConfigureAwait(false);

    public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) =>
        RunAsync("regenerating", request.Key.Id, ct => inner.RegenerateAsync(request, ct), cancellationToken);

    public async ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) =>
        await RunAsync("destroying", sessionId, ct => inner.DestroyAsync(sessionId, now, tombstoneExpiresAt, ct), cancellationToken).ConfigureAwait(false);

    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
        inner.WaitForReleaseAsync(sessionId, maxWait, cancellationToken);

    /// <summary>
    /// Runs an operation of session <paramref name="sessionId"/> that returns nothing, guarded as a driver call;
    /// <paramref name="what"/> says what it does, as the messages say it ("destroying", "binding").
    /// </summary>
    public ValueTask<bool> RunAsync(string what, string sessionId, Func<CancellationToken, ValueTask> operation, CancellationToken cancellationToken) =>
        RunAsync(what, sessionId, async ct =>
        {
            await operation(ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    /// <summary>
    /// Runs an operation of session <paramref name="sessionId"/>, guarded as a driver call; <paramref name="what"/>
    /// says what it does, as the messages say it ("loading", "importing").
    /// </summary>
    public async ValueTask<T> RunAsync<T>(string what, string sessionId, Func<CancellationToken, ValueTask<T>> operation, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ioTimeout);
        try
        {
            var pending = operation(timeout.Token);
            return pending.IsCompleted
                ? pending.Result
                : await pending.AsTask().ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException($"Timed out {what} the session (AsmSessionOptions.IOTimeout is {ioTimeout}).", ex, timeout.Token);
        }
        catch (Exception ex) when (ex is not (OperationCanceledException or SessionStorageException))
        {
            throw new SessionStorageException($"Failed {what} session {SessionKey.Hash(sessionId)}: {ex.Message}", ex);
        }
    }
}
