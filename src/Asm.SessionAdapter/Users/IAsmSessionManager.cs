namespace Asm.SessionAdapter;

/// <summary>
/// Lists and ends sessions from anywhere (a request of another session, a background job): a user's sessions, one
/// session by id, all of a user's sessions but one. Registered by <c>AddAsmSession()</c> as a singleton.
/// </summary>
/// <remarks>
/// Ending a session here has the effect of <see cref="IAsmSession.DestroyAsync"/> from its own request: commits of its
/// requests in flight are refused, its cookie is reported <see cref="InvalidSessionReason.Destroyed"/>, and
/// <see cref="AsmSessionEvents.OnSessionEnded"/> is raised once. Unknown ids give <see langword="null"/>,
/// <see langword="false"/> or 0, never an exception.
/// </remarks>
public interface IAsmSessionManager
{
    /// <summary>The live sessions bound to <paramref name="userId"/> (never an expired or destroyed one), least recently used first.</summary>
    /// <param name="userId">The user id, as given to <see cref="IAsmSession.BindUserAsync"/>.</param>
    /// <param name="cancellationToken">Cancels the storage calls.</param>
    /// <returns>The user's live sessions; empty for an unknown user.</returns>
    /// <exception cref="ArgumentException"><paramref name="userId"/> is empty, whitespace or too long.</exception>
    Task<IReadOnlyList<AsmSessionInfo>> GetUserSessionsAsync(string userId, CancellationToken cancellationToken = default);

    /// <summary>The live session with id <paramref name="sessionId"/>.</summary>
    /// <param name="sessionId">The stable session id (<c>ISession.Id</c>).</param>
    /// <param name="cancellationToken">Cancels the storage call.</param>
    /// <returns>The session, or <see langword="null"/> when no live session has this id.</returns>
    Task<AsmSessionInfo?> GetSessionAsync(string sessionId, CancellationToken cancellationToken = default);

    /// <summary>Ends the live session with id <paramref name="sessionId"/>, as its own request's <c>DestroyAsync()</c> would.</summary>
    /// <param name="sessionId">The stable session id (<c>ISession.Id</c>).</param>
    /// <param name="cancellationToken">Cancels the storage calls.</param>
    /// <returns><see langword="true"/> when a live session was ended; <see langword="false"/> when there was none.</returns>
    Task<bool> DestroySessionAsync(string sessionId, CancellationToken cancellationToken = default);

    /// <summary>Ends every live session of <paramref name="userId"/>, except <paramref name="exceptSessionId"/>.</summary>
    /// <param name="userId">The user id.</param>
    /// <param name="exceptSessionId">A session to keep (typically the current request's <c>ISession.Id</c>), or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Cancels the storage calls.</param>
    /// <returns>How many sessions were ended.</returns>
    /// <exception cref="ArgumentException"><paramref name="userId"/> is empty, whitespace or too long.</exception>
    Task<int> DestroyUserSessionsAsync(string userId, string? exceptSessionId = null, CancellationToken cancellationToken = default);
}
