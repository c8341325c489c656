namespace Asm.Caching.Sessions;

/// <summary>What <see cref="ISessionDriver.LoadAsync"/> found.</summary>
public sealed record SessionLoadResult
{
    private static readonly Dictionary<string, byte[]> NoValues = new(StringComparer.Ordinal);

    /// <summary>The outcome.</summary>
    public required SessionLoadStatus Status { get; init; }

    /// <summary>The stored values (opaque bytes, as committed), when the session was loaded.</summary>
    public IReadOnlyDictionary<string, byte[]> Values { get; init; } = NoValues;

    /// <summary>The current secret of the session, when it was loaded through a zombie secret.</summary>
    public string? CurrentSecret { get; init; }

    /// <summary>
    /// When the session was loaded through a zombie secret: the client profile of the request that replaced that
    /// secret (<see cref="SessionRegenerateRequest.Profile"/>), or <see langword="null"/> when none was stored.
    /// </summary>
    public string? ZombieProfile { get; init; }

    /// <summary>
    /// When the session was loaded through a zombie secret: whether that secret is the newest zombie, the one the
    /// current secret replaced; <see langword="false"/> once the session has been regenerated again since.
    /// </summary>
    public bool ZombieIsLatest { get; init; }

    /// <summary>
    /// When the presented secret is a zombie whose window has closed (<see cref="SessionLoadStatus.ZombieExpired"/>):
    /// when that window closed (the <see cref="SessionRegenerateRequest.ZombieExpiresAt"/> it was replaced with), or
    /// <see langword="null"/> when the driver does not say.
    /// </summary>
    public DateTimeOffset? ZombieExpiredAt { get; init; }

    /// <summary>When the session was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>The client profiles the session has been used from, oldest first.</summary>
    public IReadOnlyList<string> Profiles { get; init; } = [];

    /// <summary>The granted lease (with its fencing value), when one was asked for and acquired.</summary>
    public SessionLease? Lease { get; init; }

    /// <summary>The user the session is bound to, or <see langword="null"/>.</summary>
    public string? UserId { get; init; }

    /// <summary>Creates a result that carries only a status.</summary>
    public static SessionLoadResult Of(SessionLoadStatus status) => new() { Status = status };
}
