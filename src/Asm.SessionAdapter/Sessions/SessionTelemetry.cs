using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Asm.SessionAdapter.Sessions;

/// <summary>
/// One request's session telemetry: its metrics and its log messages, which name the session by a short hash of its
/// id, never by the id. The hash is computed once per session id, and only when a message is logged or another part
/// (an event, an exception message) asks for it.
/// </summary>
/// <remarks>
/// A request's renewal timer and its own thread may log at once (a lost lock while the request commits), so the last
/// hash is kept with its id as one object, replaced whole: a reader never pairs one id with another id's hash.
/// </remarks>
internal sealed class SessionTelemetry(AsmSessionMetrics metrics, ILogger logger)
{
    private HashedId? _last;

    /// <summary>The short hash that names session <paramref name="sessionId"/> ("-" for none).</summary>
    public string Hash(string? sessionId)
    {
        if (sessionId is null)
        {
            return "-";
        }

        var last = Volatile.Read(ref _last);
        if (last is null || !string.Equals(sessionId, last.Id, StringComparison.Ordinal))
        {
            last = new HashedId(sessionId, SessionKey.Hash(sessionId));
            Volatile.Write(ref _last, last);
        }

        return last.Hash;
    }

    public void Created(string sessionId)
    {
        metrics.Created();
        if (logger.IsEnabled(LogLevel.Information))
        {
            var hash = Hash(sessionId);
            Log.SessionCreated(logger, hash);
        }
    }

    public void CreateRefused(string sessionId)
    {
        metrics.Refused();
        if (logger.IsEnabled(LogLevel.Warning))
        {
            Log.CreateRefused(logger, Hash(sessionId));
        }
    }

    public void RefusedCreationNotEnded(string sessionId, Exception exception)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            Log.RefusedCreationNotEnded(logger, Hash(sessionId), exception);
        }
    }

    public void RegenerateAnswerLost(string sessionId, Exception exception)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            Log.RegenerateAnswerLost(logger, Hash(sessionId), exception);
        }
    }

    public void CreateCollision(string sessionId)
    {
        if (logger.IsEnabled(LogLevel.Error))
        {
            Log.CreateCollision(logger, Hash(sessionId));
        }
    }

    public void Invalid(InvalidSessionReason reason)
    {
        metrics.Invalid(reason);
        Log.InvalidSession(logger, reason);
    }

    public void LoadFailed(string? sessionId, Exception exception)
    {
        if (logger.IsEnabled(LogLevel.Error))
        {
            Log.LoadFailed(logger, Hash(sessionId), exception);
        }
    }

    public void LockWaited(TimeSpan waited, bool acquired) => metrics.LockWaited(waited, acquired);

    public void LockTimeout(string sessionId, TimeSpan waited, SessionLockMode mode)
    {
        metrics.LockWaited(waited, acquired: false);
        if (logger.IsEnabled(LogLevel.Warning))
        {
            Log.LockTimeout(logger, waited, mode, Hash(sessionId));
        }
    }

    public void LockLost(string sessionId)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            Log.LockLost(logger, Hash(sessionId));
        }

        metrics.LockLost();
    }

    public void RenewFailed(string sessionId, Exception exception)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            Log.RenewFailed(logger, Hash(sessionId), exception);
        }
    }

    public void AbandonFailed(string sessionId, Exception exception)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            Log.AbandonFailed(logger, Hash(sessionId), exception);
        }
    }

    public void CommitRefused(string sessionId)
    {
        if (logger.IsEnabled(LogLevel.Warning))
        {
            Log.CommitRefused(logger, Hash(sessionId));
        }
    }

    public void ZombieHit(string sessionId)
    {
        metrics.ZombieHit();
        if (logger.IsEnabled(LogLevel.Information))
        {
            var hash = Hash(sessionId);
            Log.ZombieHit(logger, hash);
        }
    }

    public void ProfileChanged(string sessionId, bool rejected)
    {
        metrics.ProfileChanged(rejected);
        if (logger.IsEnabled(LogLevel.Warning))
        {
            Log.ProfileChanged(logger, Hash(sessionId), rejected ? "rejected" : "accepted");
        }
    }

    public void Regenerated(string sessionId)
    {
        metrics.Regenerated();
        if (logger.IsEnabled(LogLevel.Information))
        {
            var hash = Hash(sessionId);
            Log.Regenerated(logger, hash);
        }
    }

    public void UserBound(string sessionId)
    {
        metrics.Regenerated();
        metrics.UserBound();
        if (logger.IsEnabled(LogLevel.Information))
        {
            var hash = Hash(sessionId);
            Log.UserBound(logger, hash);
        }
    }

    private sealed record HashedId(string Id, string Hash);
}
