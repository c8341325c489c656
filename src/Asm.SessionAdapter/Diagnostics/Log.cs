using Microsoft.Extensions.Logging;

namespace Asm.SessionAdapter.Diagnostics;

/// <summary>Asm's log messages. Sessions appear as short hashes, never as keys.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Session {Session} was created.")]
    public static partial void SessionCreated(ILogger logger, string session);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "A session cookie was not adopted ({Reason}); the request gets a new session.")]
    public static partial void InvalidSession(ILogger logger, InvalidSessionReason reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "Loading session {Session} failed; it is unavailable for this request.")]
    public static partial void LoadFailed(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "The lock lease on session {Session} was lost; the commit was refused and nothing was written.")]
    public static partial void LockLost(ILogger logger, string session);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "Session {Session} was destroyed or expired while this request ran; its changes were not written.")]
    public static partial void CommitRefused(ILogger logger, string session);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Session {Session} was served through a zombie key.")]
    public static partial void ZombieHit(ILogger logger, string session);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Session {Session} got a new key.")]
    public static partial void Regenerated(ILogger logger, string session);

    [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "Session {Session} was destroyed.")]
    public static partial void Destroyed(ILogger logger, string session);

    [LoggerMessage(EventId = 9, Level = LogLevel.Warning, Message = "Session {Session} was used from a new client profile; it was {Outcome}.")]
    public static partial void ProfileChanged(ILogger logger, string session, string outcome);

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "Waited {Waited} for the {Mode} lock of session {Session} without getting it.")]
    public static partial void LockTimeout(ILogger logger, TimeSpan waited, SessionLockMode mode, string session);

    [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "Renewing the lock lease on session {Session} failed; the next renewal tries again.")]
    public static partial void RenewFailed(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 13, Level = LogLevel.Warning, Message = "A cancelled or failed load may have left a lock on session {Session}, and giving it back failed; it ends with its lease.")]
    public static partial void AbandonFailed(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 14, Level = LogLevel.Warning, Message = "Session {Session} was stored for a user bind whose OnSessionCreated handler then threw, and ending it failed; it ends by its idle timeout.")]
    public static partial void RefusedCreationNotEnded(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 15, Level = LogLevel.Warning, Message = "The storage's answer to the regeneration of session {Session} was lost, but the new key opens it: the regeneration took place, and the new key is sent.")]
    public static partial void RegenerateAnswerLost(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Session {Session} was bound to a user and got a new key.")]
    public static partial void UserBound(ILogger logger, string session);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Session {Session} ended ({Reason}).")]
    public static partial void SessionEnded(ILogger logger, string session, SessionEndReason reason);

    [LoggerMessage(EventId = 22, Level = LogLevel.Error, Message = "An OnSessionEnded handler failed for session {Session}; the other ends are still reported.")]
    public static partial void SessionEndedHandlerFailed(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 23, Level = LogLevel.Warning, Message = "Scheduling the end check of new session {Session} failed; its end will not be reported.")]
    public static partial void EndTrackingFailed(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 26, Level = LogLevel.Warning, Message = "A stopped or failed sweep could not put back the end check of session {Session}; its end will not be reported.")]
    public static partial void EndCheckReturnFailed(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 24, Level = LogLevel.Debug, Message = "Removed {Count} dead entries from a user's session index.")]
    public static partial void UserIndexPruned(ILogger logger, int count);

    [LoggerMessage(EventId = 25, Level = LogLevel.Warning, Message = "Looking for ended sessions failed; the next sweep tries again.")]
    public static partial void EndSweepFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 12, Level = LogLevel.Error, Message = "A new session could not be stored: its id {Session} is already taken.")]
    public static partial void CreateCollision(ILogger logger, string session);

    [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "Stock session {StockSession} was imported as session {Session} with {Count} values.")]
    public static partial void StockSessionImported(ILogger logger, string stockSession, string session, int count);

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning, Message = "Stock session {StockSession} could not be imported: its {Length}-byte payload is not in the stock format (revision 2).")]
    public static partial void StockSessionCorrupt(ILogger logger, string stockSession, int length);

    [LoggerMessage(EventId = 42, Level = LogLevel.Information, Message = "Session {Session} was moved from the previous driver.")]
    public static partial void SessionMigrated(ILogger logger, string session);

    [LoggerMessage(EventId = 43, Level = LogLevel.Warning, Message = "The background session mover cannot list the sessions of the previous driver ({Driver}); sessions move on first use only.")]
    public static partial void MoverCannotList(ILogger logger, string driver);

    [LoggerMessage(EventId = 44, Level = LogLevel.Information, Message = "Background session move, pass {Pass}: {Listed} records listed, {Moved} sessions moved, {Locked} locked (retried).")]
    public static partial void MoverProgress(ILogger logger, int pass, int listed, int moved, int locked);

    [LoggerMessage(EventId = 45, Level = LogLevel.Information, Message = "Background session move, pass {Pass} done: {Listed} records listed, {Moved} sessions moved, {Locked} locked (retried).")]
    public static partial void MoverPassDone(ILogger logger, int pass, int listed, int moved, int locked);

    [LoggerMessage(EventId = 46, Level = LogLevel.Information, Message = "Background session move complete: every session of the previous driver has been moved or has ended.")]
    public static partial void MoverComplete(ILogger logger);

    [LoggerMessage(EventId = 47, Level = LogLevel.Warning, Message = "Background session move, pass {Pass}, failed; it starts again shortly.")]
    public static partial void MoverFailed(ILogger logger, int pass, Exception exception);

    [LoggerMessage(EventId = 48, Level = LogLevel.Error,
        Message = "MigrateFrom names the new driver's own storage: the previous driver granted a lock that the new driver holds. Nothing is moved or ended; remove MigrateFrom, or name the storage sessions are moved from.")]
    public static partial void PreviousIsCurrent(ILogger logger);

    [LoggerMessage(EventId = 49, Level = LogLevel.Warning,
        Message = "Session {Session} could not be ended in the previous driver, so its move was undone: it stays there alone, and its next use moves it again.")]
    public static partial void MoveUndone(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 51, Level = LogLevel.Error,
        Message = "Session {Session} could not be ended in the previous driver, nor taken back from the new one: old servers may use its previous copy until a new server ends the session (a log-out there ends both copies).")]
    public static partial void MoveNotUndone(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 52, Level = LogLevel.Warning,
        Message = "The lock a move took on session {Session} in the previous driver could not be released; it ends with its lease.")]
    public static partial void MoveLockNotReleased(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 53, Level = LogLevel.Warning,
        Message = "The previous storage is read-only: its sessions are copied as they stand and their previous copies are left there as they are; only the new copies are served from now on.")]
    public static partial void PreviousStorageReadOnly(ILogger logger);

    [LoggerMessage(EventId = 56, Level = LogLevel.Debug,
        Message = "Session {Session} was copied from a previous storage that is read-only; its previous copy is left there as it is.")]
    public static partial void PreviousCopyLeftReadOnly(ILogger logger, string session);

    [LoggerMessage(EventId = 54, Level = LogLevel.Warning,
        Message = "Ending session {Session} in the previous driver failed, yet it was ended there (the failure came after the end was applied), so its move stands.")]
    public static partial void MoveEndConfirmed(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 55, Level = LogLevel.Error,
        Message = "Session {Session} could not be ended in the previous driver, and whether it was could not be read there: its move stands, so that the session is not lost, and old servers may use its previous copy until a new server ends the session (a log-out there ends both copies).")]
    public static partial void MoveEndUnconfirmed(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 57, Level = LogLevel.Warning,
        Message = "Session {Session} was moved, but its end check could not be taken out of the previous driver's schedule; that driver may report its end too.")]
    public static partial void PreviousEndCheckNotClaimed(ILogger logger, string session, Exception exception);

    [LoggerMessage(EventId = 50, Level = LogLevel.Warning, Message = "The storage is full: new session {Session} was refused and not stored.")]
    public static partial void CreateRefused(ILogger logger, string session);

    [LoggerMessage(EventId = 71, Level = LogLevel.Warning, Message = "SessionOptions sets {Options}, which Asm's session does not use: it takes " +
        "its cookie and timeouts from AsmSessionOptions. Set them there (AddAsmSession(o => ...) or Configure<AsmSessionOptions>).")]
    public static partial void SessionOptionsNotUsed(ILogger logger, string options);
}
