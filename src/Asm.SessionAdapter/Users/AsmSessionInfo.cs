namespace Asm.SessionAdapter;

/// <summary>What <see cref="IAsmSessionManager"/> tells about a live session. Never a key or a secret.</summary>
/// <param name="SessionId">The stable session id, as <c>ISession.Id</c>.</param>
/// <param name="UserId">The user the session is bound to, or <see langword="null"/>.</param>
/// <param name="CreatedAt">When the session was created.</param>
/// <param name="LastAccessedAt">
/// When the session was last used: derived from its idle expiry (the idle expiry less
/// <see cref="AsmSessionOptions.IdleTimeout"/>), so it is exact unless the absolute timeout capped the idle expiry, to
/// within a sixteenth of the idle timeout: a read moves the idle expiry only when that moves it by more.
/// </param>
/// <param name="IdleExpiresAt">When the session ends unless it is used again.</param>
/// <param name="AbsoluteExpiresAt">When the session ends however active it is; <see langword="null"/> for never.</param>
/// <param name="Profiles">The client profiles the session has been used from, oldest first.</param>
public sealed record AsmSessionInfo(
    string SessionId,
    string? UserId,
    DateTimeOffset CreatedAt,
    DateTimeOffset LastAccessedAt,
    DateTimeOffset IdleExpiresAt,
    DateTimeOffset? AbsoluteExpiresAt,
    IReadOnlyList<string> Profiles);
