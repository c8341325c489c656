using Asm.Caching.Sessions;

namespace Asm.Testing.Drivers;

/// <summary>
/// A driver that passes every call to a real one: a test derives from it and overrides the one or two calls it
/// delays or breaks (a load held until the test resumes it, a destroy whose answer is lost).
/// </summary>
/// <typeparam name="TInner">The real driver, which also moves sessions (every driver of this repository does).</typeparam>
/// <param name="inner">The real driver.</param>
public abstract class ForwardingSessionDriver<TInner>(TInner inner) : ISessionDriver, ISessionTransferDriver
    where TInner : ISessionDriver, ISessionTransferDriver
{
    /// <summary>The real driver every call goes to.</summary>
    public TInner Inner => inner;

    /// <inheritdoc />
    public virtual ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken) =>
        inner.LoadAsync(request, cancellationToken);

    /// <inheritdoc />
    public virtual ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken) =>
        inner.CommitAsync(request, cancellationToken);

    /// <inheritdoc />
    public virtual ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        inner.RenewLockAsync(sessionId, lease, now, cancellationToken);

    /// <inheritdoc />
    public virtual ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) =>
        inner.ReleaseLockAsync(sessionId, lease, cancellationToken);

    /// <inheritdoc />
    public virtual ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) =>
        inner.RegenerateAsync(request, cancellationToken);

    /// <inheritdoc />
    public virtual ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) =>
        inner.DestroyAsync(sessionId, now, tombstoneExpiresAt, cancellationToken);

    /// <inheritdoc />
    public virtual Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
        inner.WaitForReleaseAsync(sessionId, maxWait, cancellationToken);

    /// <inheritdoc />
    public virtual ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        inner.ExportAsync(sessionId, lease, now, cancellationToken);

    /// <inheritdoc />
    public virtual ValueTask<bool> ImportAsync(SessionSnapshot snapshot, DateTimeOffset now, CancellationToken cancellationToken) =>
        inner.ImportAsync(snapshot, now, cancellationToken);
}
