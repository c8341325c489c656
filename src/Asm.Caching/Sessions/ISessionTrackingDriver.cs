namespace Asm.Caching.Sessions;

/// <summary>
/// What a driver offers, besides <see cref="ISessionDriver"/>, so that sessions can be bound to users, listed, and their
/// ends reported once: user binding, a user index, and an end-check schedule that instances claim entries from.
/// </summary>
/// <remarks>
/// <para>
/// Each operation is atomic on one record, one user index or one schedule entry (one Redis slot), and none needs two
/// at once: a bind is the session operation and then the index update, and readers repair the index (an entry whose
/// session is gone or bound to another user is theirs to remove). User ids are stored under a hash of the id; the raw
/// id is kept inside the session record.
/// </para>
/// <para>
/// The schedule holds one entry per tracked session with the time to look at it again. Taking an entry out is the
/// claim: it succeeds in exactly one caller, however many instances share the storage.
/// </para>
/// </remarks>
public interface ISessionTrackingDriver
{
    /// <summary>
    /// Replaces the secret of a live session (as <see cref="ISessionDriver.RegenerateAsync"/>) and binds it to
    /// <paramref name="userId"/> in the same atomic step.
    /// </summary>
    /// <returns>Whether the bind was applied, and the user the session was bound to before.</returns>
    ValueTask<SessionBindResult> BindUserAsync(SessionRegenerateRequest request, string userId, CancellationToken cancellationToken);

    /// <summary>Reads what a session's record tells about it, without sliding or locking it.</summary>
    /// <returns>The record's information (a tombstone's too), or <see langword="null"/> when there is no readable record.</returns>
    ValueTask<StoredSessionInfo?> GetInfoAsync(string sessionId, CancellationToken cancellationToken);

    /// <summary>
    /// Ends a session that a sweep found past its idle or absolute expiry by the sweeping instance's clock, for every
    /// instance whatever its clock: its idle expiry is set to the Unix epoch, so that every load then finds it expired.
    /// Nothing is changed when the record is gone, destroyed, or its idle expiry is no longer
    /// <paramref name="idleExpiresAt"/> (a request used the session after the sweep read it).
    /// </summary>
    /// <returns><see langword="true"/> when the session was ended; <see langword="false"/> when the record was not as read.</returns>
    ValueTask<bool> ExpireSessionAsync(string sessionId, DateTimeOffset idleExpiresAt, CancellationToken cancellationToken);

    /// <summary>Adds <paramref name="sessionId"/> to the index of <paramref name="userId"/>.</summary>
    ValueTask AddToUserIndexAsync(string userId, string sessionId, CancellationToken cancellationToken);

    /// <summary>The session ids in the index of <paramref name="userId"/> (some may be dead: callers check and prune).</summary>
    ValueTask<IReadOnlyList<string>> GetUserIndexAsync(string userId, CancellationToken cancellationToken);

    /// <summary>Removes <paramref name="sessionIds"/> from the index of <paramref name="userId"/>; the index goes when it empties.</summary>
    ValueTask RemoveFromUserIndexAsync(string userId, IReadOnlyCollection<string> sessionIds, CancellationToken cancellationToken);

    /// <summary>Schedules (or moves) the end check of <paramref name="sessionId"/> to <paramref name="at"/>.</summary>
    ValueTask ScheduleEndCheckAsync(string sessionId, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Takes the end check of <paramref name="sessionId"/> out of the schedule, whatever its time.</summary>
    /// <returns><see langword="true"/> in the one caller that took it; <see langword="false"/> when it was not scheduled.</returns>
    ValueTask<bool> ClaimEndCheckAsync(string sessionId, CancellationToken cancellationToken);

    /// <summary>Takes out up to <paramref name="max"/> end checks due at <paramref name="now"/>.</summary>
    /// <returns>The session ids taken; each is returned to exactly one caller.</returns>
    ValueTask<IReadOnlyList<string>> ClaimDueEndChecksAsync(DateTimeOffset now, int max, CancellationToken cancellationToken);
}
