namespace Asm.Caching.Sessions;

/// <summary>The outcome of a write to a session record.</summary>
public enum SessionCommitStatus
{
    /// <summary>The write was applied.</summary>
    Committed,

    /// <summary>The guarding lease was lost (it expired and another holder took the lock); nothing was written.</summary>
    LockLost,

    /// <summary>
    /// The record is gone (expired, destroyed) or, for a creation, already exists; nothing was written.
    /// </summary>
    NotFound,
}
