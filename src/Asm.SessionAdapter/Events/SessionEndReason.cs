namespace Asm.SessionAdapter;

/// <summary>Why a session ended.</summary>
public enum SessionEndReason
{
    /// <summary>The session was not used for <see cref="AsmSessionOptions.IdleTimeout"/>.</summary>
    IdleTimeout,

    /// <summary>The session reached <see cref="AsmSessionOptions.AbsoluteTimeout"/>.</summary>
    AbsoluteTimeout,

    /// <summary>The session was destroyed, by its own request or by <see cref="IAsmSessionManager"/>.</summary>
    Destroyed,

    /// <summary>The session was ended to keep its user within <see cref="AsmSessionOptions.MaxSessionsPerUser"/>.</summary>
    Evicted,
}
