namespace Asm.SessionAdapter.Sessions;

/// <summary>Where a request's session is in its lifecycle: whether it has been read, and whether it may still be written.</summary>
/// <remarks>
/// <list type="bullet">
/// <item><see cref="NotLoaded"/> becomes <see cref="Loaded"/> on the first load (a presented key adopted, or a fresh
/// session started), or <see cref="Unavailable"/> when the synchronous load cannot reach storage.</item>
/// <item>A lock wait that times out with <see cref="LockWaitFailure.ContinueReadOnly"/> (at the load, or when a write
/// escalates the lock) makes it <see cref="ReadOnlyAfterLockWait"/>; an explicit commit whose lease was lost, or
/// that failed and gave its lease back, makes it <see cref="LockLost"/>.</item>
/// <item>The middleware's final commit makes every loaded state <see cref="Ended"/>, and <see cref="NotLoaded"/>
/// <see cref="EndedNotLoaded"/>, whose first load is a plain read (no lock, timer, event or cookie) that ends in
/// <see cref="Ended"/>. <see cref="Unavailable"/> stays as it is.</item>
/// </list>
/// What a write may do also depends on the endpoint's <see cref="SessionLockMode"/>. Whether a lock is held is the
/// <see cref="SessionLockHolder"/>'s to say; whether the session is stored and what it holds, the session's and its
/// <see cref="SessionChangeSet"/>'s.
/// </remarks>
internal enum SessionState
{
    /// <summary>Nothing read yet.</summary>
    NotLoaded,

    /// <summary>Loaded (or started afresh): writes are allowed as far as the lock mode goes.</summary>
    Loaded,

    /// <summary>The lock wait timed out and <see cref="LockWaitFailure.ContinueReadOnly"/> went on without the lock.</summary>
    ReadOnlyAfterLockWait,

    /// <summary>An explicit commit found the lease lost, or failed and gave it back: nothing more may be written without it.</summary>
    LockLost,

    /// <summary>The storage could not be reached by the synchronous load: the session is unavailable for the request.</summary>
    Unavailable,

    /// <summary>The middleware's final commit ran before anything was read.</summary>
    EndedNotLoaded,

    /// <summary>The middleware's final commit has run: the request is over, reading is allowed, writing throws.</summary>
    Ended,
}
