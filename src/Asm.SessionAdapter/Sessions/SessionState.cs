namespace Asm.SessionAdapter.Sessions;

/// <summary>Where a request's session is in its lifecycle; what it may do follows from this alone.</summary>
/// <remarks>
/// <code>
/// NotLoaded ─load─▶ Loaded ─lease refused by an explicit commit─▶ LockLost
///     │               │  ╲─lock wait timed out (ContinueReadOnly)─▶ ReadOnlyAfterLockWait
///     │               └──────────── final commit ───────────────▶ Ended (reads only)
///     ├─ synchronous load failed ─▶ Unavailable (reads see nothing, writes are ignored)
///     └─ final commit ─▶ EndedNotLoaded ─load (no lock, no timer, no event, no cookie)─▶ Ended
/// </code>
/// Whether a lock is held is the <see cref="SessionLockHolder"/>'s to say; whether the session is stored and what it
/// holds, the session's and its <see cref="SessionChangeSet"/>'s.
/// </remarks>
internal enum SessionState
{
    /// <summary>Nothing read yet.</summary>
    NotLoaded,

    /// <summary>Loaded (or started afresh): writes are allowed as far as the lock mode goes.</summary>
    Loaded,

    /// <summary>The lock wait timed out and <see cref="LockWaitFailure.ContinueReadOnly"/> went on without the lock.</summary>
    ReadOnlyAfterLockWait,

    /// <summary>An explicit commit found the lease lost: nothing more may be written without it.</summary>
    LockLost,

    /// <summary>The storage could not be reached by the synchronous load: the session is unavailable for the request.</summary>
    Unavailable,

    /// <summary>The middleware's final commit ran before anything was read.</summary>
    EndedNotLoaded,

    /// <summary>The middleware's final commit has run: the request is over, reading is allowed, writing throws.</summary>
    Ended,
}
