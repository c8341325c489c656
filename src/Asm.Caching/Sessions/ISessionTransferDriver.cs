namespace Asm.Caching.Sessions;

/// <summary>
/// An optional capability of a <see cref="ISessionDriver"/>: handing over and taking in whole session records, by id,
/// with their secret, zombies, profiles, timeouts and user. Moving sessions between drivers (<c>MigrateFrom</c>) and
/// importing the stock session (<c>ImportStockSessions</c>) need it; every built-in driver has it.
/// </summary>
public interface ISessionTransferDriver
{
    /// <summary>
    /// Takes the lock of session <paramref name="sessionId"/> with <paramref name="lease"/>, by id alone (no secret),
    /// and reads its whole record, in one atomic step. A live record that another holder has locked answers
    /// <see cref="SessionLoadStatus.LockBusy"/>; a tombstone <see cref="SessionLoadStatus.Destroyed"/>; a record past its
    /// timeouts <see cref="SessionLoadStatus.Expired"/>; no record <see cref="SessionLoadStatus.Unknown"/>.
    /// </summary>
    ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="ExportAsync(string, SessionLease, DateTimeOffset, CancellationToken)"/>, which is for a caller that
    /// waits for a busy lock: with <paramref name="waitIfBusy"/> <see langword="false"/> the caller skips a locked
    /// session instead, and a driver that keeps a line of waiters for a lock (Redis) does not put it in line, where a
    /// release would keep the lock for it in vain. The default implementation ignores <paramref name="waitIfBusy"/>.
    /// </summary>
    ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, bool waitIfBusy, CancellationToken cancellationToken) =>
        ExportAsync(sessionId, lease, now, cancellationToken);

    /// <summary>
    /// Stores <paramref name="snapshot"/> as a new, unlocked record, unless any record with its id exists (even a
    /// tombstone or an unreadable one). <paramref name="now"/> is the current time, from the application's
    /// <see cref="TimeProvider"/>. Returns whether it was stored.
    /// </summary>
    ValueTask<bool> ImportAsync(SessionSnapshot snapshot, DateTimeOffset now, CancellationToken cancellationToken);
}
