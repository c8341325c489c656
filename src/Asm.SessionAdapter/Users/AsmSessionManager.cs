namespace Asm.SessionAdapter.Users;

/// <summary>The <see cref="IAsmSessionManager"/> registered by <c>AddAsmSession()</c>.</summary>
internal sealed class AsmSessionManager(SessionLifecycle lifecycle) : IAsmSessionManager
{
    public Task<IReadOnlyList<AsmSessionInfo>> GetUserSessionsAsync(string userId, CancellationToken cancellationToken = default)
    {
        SessionLifecycle.ValidateUserId(userId, nameof(userId));
        return lifecycle.ListAsync(userId, cancellationToken);
    }

    public Task<AsmSessionInfo?> GetSessionAsync(string sessionId, CancellationToken cancellationToken = default) =>
        lifecycle.GetAsync(sessionId, cancellationToken);

    public async Task<bool> DestroySessionAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        if (await lifecycle.GetAsync(sessionId, cancellationToken).ConfigureAwait(false) is not { } session)
        {
            return false;
        }

        await lifecycle.EndAsync(session.SessionId, session.UserId, SessionEndReason.Destroyed, cancellationToken).ConfigureAwait(false);
        return true;
    }

    public async Task<int> DestroyUserSessionsAsync(string userId, string? exceptSessionId = null, CancellationToken cancellationToken = default)
    {
        SessionLifecycle.ValidateUserId(userId, nameof(userId));
        var ended = 0;
        foreach (var session in await lifecycle.ListAsync(userId, cancellationToken).ConfigureAwait(false))
        {
            if (session.SessionId != exceptSessionId)
            {
                await lifecycle.EndAsync(session.SessionId, userId, SessionEndReason.Destroyed, cancellationToken).ConfigureAwait(false);
                ended++;
            }
        }

        return ended;
    }
}
