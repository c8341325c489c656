namespace Asm.Caching.Sessions;

/// <summary>A whole session record, as <see cref="ISessionTransferDriver"/> hands it from one driver to another.</summary>
public sealed record SessionSnapshot
{
    private static readonly Dictionary<string, byte[]> NoValues = new(StringComparer.Ordinal);

    /// <summary>The stable session id.</summary>
    public required string SessionId { get; init; }

    /// <summary>The current secret.</summary>
    public required string Secret { get; init; }

    /// <summary>When the session was created.</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>When the session expires unless it is used again.</summary>
    public required DateTimeOffset IdleExpiresAt { get; init; }

    /// <summary>When the session expires however active it is; <see langword="null"/> for never.</summary>
    public DateTimeOffset? AbsoluteExpiresAt { get; init; }

    /// <summary>When the record may be deleted from storage (after its idle expiry, and after its last zombie).</summary>
    public required DateTimeOffset PurgeAt { get; init; }

    /// <summary>The last fencing value issued, so that fences keep increasing across a move.</summary>
    public long Fence { get; init; }

    /// <summary>Former secrets with the end of their window, oldest first.</summary>
    public IReadOnlyList<SessionZombie> Zombies { get; init; } = [];

    /// <summary>Client profiles, oldest first.</summary>
    public IReadOnlyList<string> Profiles { get; init; } = [];

    /// <summary>
    /// The user the session is bound to (see <see cref="ISessionTrackingDriver.BindUserAsync"/>), or
    /// <see langword="null"/>. Only the record carries it: the user's index and the end check are the mover's to write.
    /// </summary>
    public string? UserId { get; init; }

    /// <summary>The stored values (opaque bytes, as committed).</summary>
    public IReadOnlyDictionary<string, byte[]> Values { get; init; } = NoValues;
}

/// <summary>A former secret of a session and the end of its window.</summary>
/// <param name="Secret">The former secret.</param>
/// <param name="ExpiresAt">Until when it still opens the session.</param>
/// <param name="Profile">
/// The client profile of the request that replaced the secret (see <see cref="SessionRegenerateRequest.Profile"/>), or
/// <see langword="null"/> when none was stored.
/// </param>
public readonly record struct SessionZombie(string Secret, DateTimeOffset ExpiresAt, string? Profile = null);
