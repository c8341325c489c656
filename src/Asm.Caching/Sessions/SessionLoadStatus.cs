namespace Asm.Caching.Sessions;

/// <summary>The outcome of <see cref="ISessionDriver.LoadAsync"/>.</summary>
public enum SessionLoadStatus
{
    /// <summary>The session was loaded with its current secret (and locked, when a lease was asked for).</summary>
    Found,

    /// <summary>The session was loaded through a zombie secret that is still inside its window.</summary>
    Zombie,

    /// <summary>No session answers to this key.</summary>
    Unknown,

    /// <summary>The session exists but its idle or absolute timeout has passed.</summary>
    Expired,

    /// <summary>The session was destroyed.</summary>
    Destroyed,

    /// <summary>The key is a zombie secret whose window has closed.</summary>
    ZombieExpired,

    /// <summary>A lease was asked for and another holder has the lock; nothing was loaded.</summary>
    LockBusy,

    /// <summary>The stored record could not be read.</summary>
    Corrupt,
}
