namespace Asm.Caching.Sessions;

/// <summary>What <see cref="ISessionDriver.RegenerateAsync"/> needs.</summary>
public sealed record SessionRegenerateRequest
{
    /// <summary>The key the request presented (current or a live zombie).</summary>
    public required SessionKey Key { get; init; }

    /// <summary>The new secret.</summary>
    public required string NewSecret { get; init; }

    /// <summary>The current time.</summary>
    public required DateTimeOffset Now { get; init; }

    /// <summary>Until when the replaced secret keeps working as a zombie.</summary>
    public required DateTimeOffset ZombieExpiresAt { get; init; }

    /// <summary>
    /// The client profile of the request that regenerates, stored with the replaced secret so that the zombie can be
    /// served only to the same client; <see langword="null"/> when profiles are off.
    /// </summary>
    public string? Profile { get; init; }

    /// <summary>How many zombie secrets the record keeps (the oldest go first).</summary>
    public int MaxZombies { get; init; } = 8;
}
