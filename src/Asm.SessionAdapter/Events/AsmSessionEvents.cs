namespace Asm.SessionAdapter;

/// <summary>
/// Callbacks on session events, in the shape of ASP.NET Core's authentication events: set the properties, or
/// derive and override the methods. An exception thrown by a handler propagates to the request.
/// </summary>
public class AsmSessionEvents
{
    /// <summary>A presented cookie was not adopted (fires once per request).</summary>
    public Func<InvalidSessionContext, Task> OnInvalidSessionAccessed { get; set; } = _ => Task.CompletedTask;

    /// <summary>A replaced key was used inside its zombie window.</summary>
    public Func<ZombieKeyContext, Task> OnZombieKeyAccessed { get; set; } = _ => Task.CompletedTask;

    /// <summary>A session is used from a client profile it was not used from before.</summary>
    public Func<ProfileChangedContext, Task> OnProfileChanged { get; set; } = _ => Task.CompletedTask;

    /// <summary>A commit was refused because the request's lock lease was lost.</summary>
    public Func<LockLostContext, Task> OnLockLost { get; set; } = _ => Task.CompletedTask;

    /// <summary>A new session was stored (at the end of the request that first wrote to it).</summary>
    public Func<SessionCreatedContext, Task> OnSessionCreated { get; set; } = _ => Task.CompletedTask;

    /// <summary>
    /// A session ended (idle or absolute timeout, destroy, eviction); raised once per session, outside requests. An
    /// exception thrown here is logged and does not stop the other ends from being reported.
    /// </summary>
    public Func<SessionEndedContext, Task> OnSessionEnded { get; set; } = _ => Task.CompletedTask;

    /// <summary>Invokes <see cref="OnInvalidSessionAccessed"/>.</summary>
    public virtual Task InvalidSessionAccessed(InvalidSessionContext context) => OnInvalidSessionAccessed(context);

    /// <summary>Invokes <see cref="OnZombieKeyAccessed"/>.</summary>
    public virtual Task ZombieKeyAccessed(ZombieKeyContext context) => OnZombieKeyAccessed(context);

    /// <summary>Invokes <see cref="OnProfileChanged"/>.</summary>
    public virtual Task ProfileChanged(ProfileChangedContext context) => OnProfileChanged(context);

    /// <summary>Invokes <see cref="OnLockLost"/>.</summary>
    public virtual Task LockLost(LockLostContext context) => OnLockLost(context);

    /// <summary>Invokes <see cref="OnSessionCreated"/>.</summary>
    public virtual Task SessionCreated(SessionCreatedContext context) => OnSessionCreated(context);

    /// <summary>Invokes <see cref="OnSessionEnded"/>.</summary>
    public virtual Task SessionEnded(SessionEndedContext context) => OnSessionEnded(context);
}
