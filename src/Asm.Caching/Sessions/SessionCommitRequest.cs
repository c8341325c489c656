namespace Asm.Caching.Sessions;

/// <summary>What <see cref="ISessionDriver.CommitAsync"/> writes.</summary>
public sealed record SessionCommitRequest
{
    private static readonly Dictionary<string, byte[]?> NoChanges = new(StringComparer.Ordinal);

    /// <summary>The session id.</summary>
    public required string SessionId { get; init; }

    /// <summary>The current time, from the application's <see cref="TimeProvider"/>.</summary>
    public required DateTimeOffset Now { get; init; }

    /// <summary>How far the idle expiry slides forward.</summary>
    public required TimeSpan IdleTimeout { get; init; }

    /// <summary>
    /// When set, the session is new: the record is created with this secret, and the commit fails with
    /// <see cref="SessionCommitStatus.NotFound"/> if a record with this id already exists.
    /// </summary>
    public string? CreateWithSecret { get; init; }

    /// <summary>For a new session: when it expires however active it is; <see langword="null"/> for never.</summary>
    public DateTimeOffset? AbsoluteExpiresAt { get; init; }

    /// <summary>The lease guarding this write, or <see langword="null"/> for a lockless delta.</summary>
    public SessionLease? Lease { get; init; }

    /// <summary>Whether to release <see cref="Lease"/> once the write is applied.</summary>
    public bool ReleaseLock { get; init; }

    /// <summary>Whether every stored value is removed before <see cref="Changes"/> are applied.</summary>
    public bool Clear { get; init; }

    /// <summary>Values to set; a <see langword="null"/> value removes the name.</summary>
    public IReadOnlyDictionary<string, byte[]?> Changes { get; init; } = NoChanges;

    /// <summary>Client profiles to record (the record keeps the newest <see cref="MaxProfiles"/>).</summary>
    public IReadOnlyList<string> AddProfiles { get; init; } = [];

    /// <summary>How many profiles the record keeps.</summary>
    public int MaxProfiles { get; init; } = 8;

    /// <summary>
    /// Told once this commit, which releases <see cref="Lease"/>, is sent, by a driver that can promise that storage
    /// runs it before whatever the process sends to the session afterwards (see <see cref="ILockReleaseObserver"/>).
    /// </summary>
    public ILockReleaseObserver? ReleaseObserver { get; init; }
}
