namespace Asm.Caching.Sessions;

/// <summary>
/// The storage seam of Asm sessions: a handful of atomic operations on one session record.
/// </summary>
/// <remarks>
/// <para>
/// A session record is addressed by a stable session id and guarded by a secret: the cookie key is the two
/// concatenated (see <see cref="SessionKey"/>). Regeneration replaces the secret and keeps the id, so the record,
/// its lock and its data never move, and every operation touches one record (one Redis slot, one file).
/// </para>
/// <para>
/// Every operation is atomic and, on a networked driver, one round trip. Times come from the caller
/// (<see cref="SessionLoadRequest.Now"/> and friends), so that idle and absolute timeouts and zombie windows follow
/// the application's <see cref="TimeProvider"/>. Lock leases are the exception where the storage is shared across
/// machines: such a driver (Redis) grants, renews and judges them by the storage's own clock, so that mutual exclusion
/// never depends on application servers agreeing on the time. A commit under a lease is applied only while the stored
/// lock carries both the lease's token and its fence. Nothing here knows about HTTP.
/// </para>
/// </remarks>
public interface ISessionDriver
{
    /// <summary>
    /// Loads a session, slides its idle expiry and, when <see cref="SessionLoadRequest.Lease"/> is set,
    /// acquires its lock in the same atomic step.
    /// </summary>
    ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Writes a session: creates it, or applies a delta of changed values to the stored record, and optionally
    /// releases the lock. A delta guarded by a lease is refused when the lease was lost.
    /// </summary>
    ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken);

    /// <summary>Extends a lease the caller still holds. Returns <see langword="false"/> when the lease was lost.</summary>
    ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Releases a lease the caller holds, named by its token (its fence may be unknown: a load cancelled after the
    /// storage granted the lease); does nothing when the lease was already lost.
    /// </summary>
    ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="ReleaseLockAsync(string, SessionLease, CancellationToken)"/>, telling <paramref name="observer"/>
    /// once the release is sent (see <see cref="ILockReleaseObserver"/>). A driver that cannot promise the order of its
    /// commands (and a decorator that does not pass the observer on) inherits this implementation, which never tells it.
    /// </summary>
    ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, ILockReleaseObserver? observer, CancellationToken cancellationToken) =>
        ReleaseLockAsync(sessionId, lease, cancellationToken);

    /// <summary>
    /// Replaces the secret of a live session; the presented secret becomes a zombie until
    /// <see cref="SessionRegenerateRequest.ZombieExpiresAt"/>.
    /// </summary>
    ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Removes everything a session stored (values, lock, zombies, profiles) and leaves a tombstone until
    /// <paramref name="tombstoneExpiresAt"/>, so that in-flight commits are refused and a returning cookie is told apart
    /// from an unknown one. A tombstone that would end at or before <paramref name="now"/> is not left: the record is
    /// removed, as if it had never been stored (a move that cannot end a session's previous copy takes back its new one
    /// this way).
    /// </summary>
    ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken);

    /// <summary>
    /// Completes when the lock of <paramref name="sessionId"/> may have been released, or after
    /// <paramref name="maxWait"/>. Waiting never spins; a driver wakes waiters on release where it can.
    /// </summary>
    /// <remarks>
    /// A caller waits after a locking load was refused with <see cref="SessionLoadStatus.LockBusy"/>, and loads again
    /// when the wait ends. A driver may rely on that refusal to know that someone waits (the Redis driver publishes a
    /// release only when a refused load marked the session), so a wait that no refused load preceded may end only at
    /// <paramref name="maxWait"/>.
    /// </remarks>
    Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken);
}
