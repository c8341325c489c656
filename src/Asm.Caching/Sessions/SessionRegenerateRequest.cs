namespace Asm.Caching.Sessions;

/// <summary>What <see cref="ISessionDriver.RegenerateAsync"/> needs.</summary>
public sealed class SessionRegenerateRequest
{
    /// <summary>The key the request presented (current or a live zombie).</summary>
    public required SessionKey Key { get; init; }

    /// <summary>The new secret.</summary>
    public required string NewSecret { get; init; }

    /// <summary>The current time.</summary>
    public required DateTimeOffset Now { get; init; }

    /// <summary>Until when the replaced secret keeps working as a zombie.</summary>
    public required DateTimeOffset ZombieExpiresAt { get; init; }

    /// <summary>How many zombie secrets the record keeps (the oldest go first).</summary>
    public int MaxZombies { get; init; } = 8;
}
