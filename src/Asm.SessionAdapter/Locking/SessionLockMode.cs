namespace Asm.SessionAdapter;

/// <summary>How a request locks its session, chosen per endpoint like a database isolation level.</summary>
public enum SessionLockMode
{
    /// <summary>
    /// The lock is taken when the session is loaded and released after commit: concurrent requests of one session
    /// run one at a time, so read-modify-write is safe. The default.
    /// </summary>
    Exclusive,

    /// <summary>
    /// Reads take no lock; the first write (or <see cref="IAsmSession.AcquireWriteLockAsync"/>) takes the lock and
    /// reloads the latest data before applying the change.
    /// </summary>
    LockOnWrite,

    /// <summary>
    /// No lock: the commit writes only the names this request changed, merged atomically into the stored session.
    /// Requests changing different names all persist; for one name, the last writer wins.
    /// </summary>
    Lockless,

    /// <summary>
    /// Never takes or waits for a lock and reads the last committed state; writes throw
    /// <see cref="InvalidOperationException"/>.
    /// </summary>
    ReadOnly,
}
