namespace Asm.Demo;

/// <summary>One session event the demo received, as the page shows it.</summary>
/// <param name="At">When the event was raised.</param>
/// <param name="Session">A short hash of the id of the session the event is about.</param>
/// <param name="Kind">One of the kind constants, used by the page for its badge.</param>
/// <param name="Text">What happened, in a sentence.</param>
/// <param name="User">For a session end, the user the session was bound to: the page of any of that user's sessions shows it.</param>
internal sealed record DemoEvent(DateTimeOffset At, string Session, string Kind, string Text, string? User = null)
{
    /// <summary><c>OnSessionEnded</c>: a session ended (idle or absolute timeout, destroy, eviction).</summary>
    public const string SessionEnded = "session-ended";

    /// <summary><c>OnZombieKeyAccessed</c>: a key replaced by a regeneration was used inside its zombie window.</summary>
    public const string ZombieKey = "zombie-key";

    /// <summary><c>OnProfileChanged</c>: the session was used from a client profile it had not seen.</summary>
    public const string ProfileChanged = "profile-changed";

    /// <summary><c>OnInvalidSessionAccessed</c>: a presented cookie was not adopted.</summary>
    public const string InvalidSession = "invalid-session";

    /// <summary><c>OnLockLost</c>: a commit was refused because the lock lease was lost.</summary>
    public const string LockLost = "lock-lost";
}
