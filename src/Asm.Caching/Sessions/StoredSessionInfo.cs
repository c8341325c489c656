namespace Asm.Caching.Sessions;

/// <summary>What a session record tells about its session (see <see cref="ISessionTrackingDriver.GetInfoAsync"/>).</summary>
/// <param name="SessionId">The session id.</param>
/// <param name="UserId">The user it is bound to, or <see langword="null"/>.</param>
/// <param name="Destroyed">Whether the record is a tombstone.</param>
/// <param name="CreatedAt">When it was created.</param>
/// <param name="IdleExpiresAt">Its idle expiry.</param>
/// <param name="AbsoluteExpiresAt">Its absolute expiry; <see langword="null"/> for never.</param>
/// <param name="Profiles">Its client profiles, oldest first, as stored.</param>
public sealed record StoredSessionInfo(
    string SessionId,
    string? UserId,
    bool Destroyed,
    DateTimeOffset CreatedAt,
    DateTimeOffset IdleExpiresAt,
    DateTimeOffset? AbsoluteExpiresAt,
    IReadOnlyList<string> Profiles)
{
    /// <summary>Whether the session is usable at <paramref name="now"/>: not destroyed, neither timeout passed.</summary>
    public bool IsLiveAt(DateTimeOffset now) => !Destroyed && IdleExpiresAt > now && (AbsoluteExpiresAt is not { } a || a > now);

    /// <summary>When the session stops being usable unless it is used again.</summary>
    public DateTimeOffset EndsAt => EndOf(IdleExpiresAt, AbsoluteExpiresAt);

    /// <summary>
    /// When a session with these expiries stops being usable unless it is used again: the earlier of the two. The one
    /// rule for every end check, of a stored session, a moved one (its snapshot) and a new one.
    /// </summary>
    internal static DateTimeOffset EndOf(DateTimeOffset idleExpiresAt, DateTimeOffset? absoluteExpiresAt) =>
        absoluteExpiresAt is { } a && a < idleExpiresAt ? a : idleExpiresAt;
}
