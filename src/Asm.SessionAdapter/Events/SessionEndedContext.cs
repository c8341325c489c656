namespace Asm.SessionAdapter;

/// <summary>
/// A session ended. Raised once per session, outside any request: in the application instance that destroyed or
/// evicted it, or in the one whose sweep found it expired.
/// </summary>
/// <param name="sessionId">The stable id of the session (as <c>ISession.Id</c>).</param>
/// <param name="userId">The user it was bound to, or <see langword="null"/>.</param>
/// <param name="reason">Why it ended.</param>
/// <param name="endedAt">When it ended (for a timeout, when the timeout passed).</param>
/// <param name="services">The application's services.</param>
public sealed class SessionEndedContext(string sessionId, string? userId, SessionEndReason reason, DateTimeOffset endedAt, IServiceProvider services)
{
    /// <summary>The stable id of the session (as <c>ISession.Id</c>); never its key.</summary>
    public string SessionId { get; } = sessionId;

    /// <summary>The user the session was bound to, or <see langword="null"/>.</summary>
    public string? UserId { get; } = userId;

    /// <summary>Why the session ended.</summary>
    public SessionEndReason Reason { get; } = reason;

    /// <summary>When the session ended: the time of the destroy or eviction, or the time its timeout passed.</summary>
    public DateTimeOffset EndedAt { get; } = endedAt;

    /// <summary>The application's services (the root provider: there is no request scope).</summary>
    public IServiceProvider Services { get; } = services;
}
