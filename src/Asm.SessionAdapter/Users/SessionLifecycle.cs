using System.Text;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Encryption;
using Microsoft.Extensions.Logging;

namespace Asm.SessionAdapter.Users;

/// <summary>
/// The rules of users and session ends, shared by the request's session, <see cref="IAsmSessionManager"/> and the
/// end sweeper: binding (the session's atomic step, then its user's index), listing with repair, ending with one
/// report, and the end checks that find timeouts.
/// </summary>
/// <remarks>
/// Every end is reported by whoever takes the session's end check out of the driver's schedule: the destroyer, the
/// evictor or a sweep. The driver lets exactly one caller take it, so an end is reported once however many instances
/// share the storage.
/// </remarks>
internal sealed class SessionLifecycle(AsmSessionServices services, IServiceProvider provider)
{
    /// <summary>How many end checks one claim takes.</summary>
    internal const int SweepBatch = 100;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly AsmSessionOptions _options = services.Options;
    private readonly ILogger _logger = services.Logger;

    /// <summary>Where lifecycle messages go.</summary>
    public ILogger Logger => _logger;

    /// <summary>The driver's user and end tracking, or <see langword="null"/> when the driver has none.</summary>
    public ISessionTrackingDriver? Tracking { get; } = services.Tracking;

    /// <summary>Checks a user id: not empty or whitespace, well-formed UTF-16, at most <see cref="AsmSessionOptions.MaxUserIdLength"/> characters.</summary>
    public static void ValidateUserId(string userId, string paramName)
    {
        ArgumentNullException.ThrowIfNull(userId, paramName);
        if (string.IsNullOrWhiteSpace(userId))
        {
            throw new ArgumentException("A user id must not be empty or whitespace.", paramName);
        }

        if (userId.Length > AsmSessionOptions.MaxUserIdLength)
        {
            throw new ArgumentException($"A user id may have at most {AsmSessionOptions.MaxUserIdLength} characters; this one has {userId.Length}.", paramName);
        }

        try
        {
            _ = StrictUtf8.GetByteCount(userId);
        }
        catch (EncoderFallbackException)
        {
            throw new ArgumentException("A user id must be well-formed UTF-16 (it has a lone surrogate).", paramName);
        }
    }

    /// <summary>Whether <paramref name="sessionId"/> has the shape of a session id (anything else names no session).</summary>
    public static bool IsSessionId(string? sessionId) =>
        sessionId is { Length: SessionKey.IdLength } && SessionKey.TryParse(sessionId + new string('A', SessionKey.SecretLength), out _);

    /// <summary>When a session stored at <paramref name="now"/> and used then ends unless used again.</summary>
    public DateTimeOffset FirstEnd(DateTimeOffset now, DateTimeOffset createdAt) =>
        StoredSessionInfo.EndOf(now + _options.IdleTimeout, createdAt + _options.AbsoluteTimeout);

    /// <summary>
    /// Schedules the first end check of a session just created, within its own <see cref="AsmSessionOptions.IOTimeout"/>:
    /// the session is stored, so a request aborted meanwhile must not leave it without one (its end would never be
    /// reported). Failures are logged: only the end report is lost.
    /// </summary>
    public async Task TrackCreatedAsync(string sessionId, DateTimeOffset now)
    {
        if (Tracking is not { } tracking)
        {
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(_options.IOTimeout, services.Time);
            await tracking.ScheduleEndCheckAsync(sessionId, FirstEnd(now, now), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            var hash = SessionKey.Hash(sessionId);
            Log.EndTrackingFailed(_logger, hash, ex);
        }
    }

    /// <summary>
    /// Binds a stored session to <paramref name="userId"/> with a new secret (one atomic step on the session), then
    /// records it in the user's index, takes it out of its former user's, schedules its end check and enforces
    /// <see cref="AsmSessionOptions.MaxSessionsPerUser"/>.
    /// </summary>
    /// <param name="request">The session's regeneration to the new secret.</param>
    /// <param name="userId">The user.</param>
    /// <param name="bound">
    /// Called once the atomic step is stored, before the steps after it: the session has its new key from then on, also
    /// when a later step fails (its old key is a zombie), so the caller must take it then.
    /// </param>
    /// <param name="cancellationToken">Cancels the bind.</param>
    public async Task<SessionCommitStatus> BindAsync(SessionRegenerateRequest request, string userId, Action bound, CancellationToken cancellationToken)
    {
        var tracking = Tracking ?? throw new NotSupportedException(
            $"The session driver {services.Driver.GetType().Name} does not keep users: it does not implement ISessionTrackingDriver.");
        var sessionId = request.Key.Id;
        var stored = services.Driver is EncryptingSessionDriver encrypting ? encrypting.Seal(request) : request;
        var result = await tracking.BindUserAsync(stored, userId, cancellationToken).ConfigureAwait(false);
        if (result.Status != SessionCommitStatus.Committed)
        {
            return result.Status;
        }

        bound();
        await tracking.AddToUserIndexAsync(userId, sessionId, cancellationToken).ConfigureAwait(false);
        if (result.PreviousUserId is { } previous && previous != userId)
        {
            await tracking.RemoveFromUserIndexAsync(previous, [sessionId], cancellationToken).ConfigureAwait(false);
        }

        if (await tracking.GetInfoAsync(sessionId, cancellationToken).ConfigureAwait(false) is { } info)
        {
            await tracking.ScheduleEndCheckAsync(sessionId, info.EndsAt, cancellationToken).ConfigureAwait(false);
        }

        if (_options.MaxSessionsPerUser is { } max)
        {
            var sessions = await ListAsync(userId, cancellationToken).ConfigureAwait(false);
            foreach (var victim in sessions.Where(s => s.SessionId != sessionId).Take(sessions.Count - max))
            {
                await EndAsync(victim.SessionId, userId, SessionEndReason.Evicted, cancellationToken).ConfigureAwait(false);
            }
        }

        return SessionCommitStatus.Committed;
    }

    /// <summary>
    /// The live sessions of <paramref name="userId"/>, least recently used first. Index entries whose session is gone,
    /// ended or bound to another user are removed from the index on the way.
    /// </summary>
    public async Task<IReadOnlyList<AsmSessionInfo>> ListAsync(string userId, CancellationToken cancellationToken)
    {
        if (Tracking is not { } tracking)
        {
            return [];
        }

        // With MigrateFrom, the user's sessions still in the previous driver are moved first, so that they are listed here.
        var lockedInPrevious = services.Migration is { } migration
            ? await migration.MoveUserSessionsAsync(userId, cancellationToken).ConfigureAwait(false)
            : [];
        var ids = await tracking.GetUserIndexAsync(userId, cancellationToken).ConfigureAwait(false);
        var infos = await Task.WhenAll(ids.Select(id => tracking.GetInfoAsync(id, cancellationToken).AsTask())).ConfigureAwait(false);
        var now = services.Time.GetUtcNow();
        List<AsmSessionInfo> live = [];
        List<string> dead = [];
        for (var i = 0; i < ids.Count; i++)
        {
            if (infos[i]?.UserId == userId)
            {
                infos[i] = await EndedEverywhereAsync(tracking, ids[i], infos[i], now, cancellationToken).ConfigureAwait(false);
            }

            if (infos[i] is { } info && info.IsLiveAt(now) && info.UserId == userId)
            {
                live.Add(ToPublic(info));
            }
            else
            {
                dead.Add(ids[i]);
            }
        }

        if (dead.Count > 0)
        {
            await tracking.RemoveFromUserIndexAsync(userId, dead, cancellationToken).ConfigureAwait(false);
            Log.UserIndexPruned(_logger, dead.Count);
        }

        foreach (var info in lockedInPrevious)
        {
            if (info.IsLiveAt(now) && info.UserId == userId && !live.Exists(s => s.SessionId == info.SessionId))
            {
                live.Add(ToPublic(info));
            }
        }

        live.Sort((a, b) => a.LastAccessedAt.CompareTo(b.LastAccessedAt));
        return live;
    }

    /// <summary>
    /// The live session <paramref name="sessionId"/>, or <see langword="null"/>. One past its end by this instance's
    /// clock is ended in the storage too, as a listing ends it, so that an instance whose clock is behind does not serve
    /// on a session this one reported gone.
    /// </summary>
    public async Task<AsmSessionInfo?> GetAsync(string sessionId, CancellationToken cancellationToken)
    {
        if (!IsSessionId(sessionId) || Tracking is not { } tracking)
        {
            return null;
        }

        var info = await tracking.GetInfoAsync(sessionId, cancellationToken).ConfigureAwait(false);
        if (info is null && services.Migration is { } migration)
        {
            // Not moved yet: moved now, as on a first use.
            info = await migration.MoveForInfoAsync(sessionId, cancellationToken).ConfigureAwait(false);
        }

        var now = services.Time.GetUtcNow();
        info = await EndedEverywhereAsync(tracking, sessionId, info, now, cancellationToken).ConfigureAwait(false);
        return info is not null && info.IsLiveAt(now) ? ToPublic(info) : null;
    }

    /// <summary>
    /// Destroys a session (a tombstone refuses its in-flight commits and reports its cookie destroyed), takes it out of
    /// its user's index, and reports the end when this caller takes its end check.
    /// </summary>
    public async Task EndAsync(string sessionId, string? userId, SessionEndReason reason, CancellationToken cancellationToken)
    {
        var now = services.Time.GetUtcNow();
        var tombstoneExpiresAt = now + (_options.IdleTimeout > _options.ZombieLifetime ? _options.IdleTimeout : _options.ZombieLifetime);
        await services.Driver.DestroyAsync(sessionId, now, tombstoneExpiresAt, cancellationToken).ConfigureAwait(false);
        services.Metrics.Destroyed();
        var hash = SessionKey.Hash(sessionId);
        Log.Destroyed(_logger, hash);
        if (Tracking is not { } tracking)
        {
            return;
        }

        if (userId is not null)
        {
            await tracking.RemoveFromUserIndexAsync(userId, [sessionId], cancellationToken).ConfigureAwait(false);
        }

        // A session still locked in the previous driver (MigrateFrom) by a request running there has its end check there.
        if (await tracking.ClaimEndCheckAsync(sessionId, cancellationToken).ConfigureAwait(false)
            || (services.Migration is { } migration && await migration.ClaimPreviousEndCheckAsync(sessionId, cancellationToken).ConfigureAwait(false)))
        {
            await ReportEndedAsync(sessionId, userId, reason, now).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Takes the end checks due at <paramref name="now"/> and looks at each session: one still live is checked again
    /// when it would end next; one that ended is reported (once: the check was this caller's) and leaves its user's index.
    /// </summary>
    /// <returns>How many ends were reported.</returns>
    public async Task<int> SweepAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (Tracking is not { } tracking)
        {
            return 0;
        }

        var reported = 0;
        while (true)
        {
            var due = await tracking.ClaimDueEndChecksAsync(now, SweepBatch, cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < due.Count; i++)
            {
                try
                {
                    reported += await CheckEndAsync(tracking, due[i], now, cancellationToken).ConfigureAwait(false) ? 1 : 0;
                }
                catch
                {
                    // The sweep was stopped (the app stopping) or storage failed half-way through the batch: the checks
                    // it took out of the schedule and has not reported go back in, due now, or their ends were never reported.
                    await ReturnEndChecksAsync(tracking, due.Skip(i), now).ConfigureAwait(false);
                    throw;
                }
            }

            if (due.Count < SweepBatch)
            {
                return reported;
            }
        }
    }

    /// <summary>
    /// A session's <paramref name="info"/> as judged by this instance's clock: one past its end is ended in the storage
    /// too (<see cref="ISessionTrackingDriver.ExpireSessionAsync"/>), so that an instance whose clock is behind does
    /// not serve it on once it has been reported ended or left out of its user's index. One that a request used after
    /// it was read (its idle expiry moved) is read again and judged as it is now.
    /// </summary>
    private static async Task<StoredSessionInfo?> EndedEverywhereAsync(
        ISessionTrackingDriver tracking, string sessionId, StoredSessionInfo? info, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // A record that never matches what was read (damaged) is tried a few times only, then judged as it reads.
        for (var attempt = 0;
             attempt < 3 && info is { Destroyed: false } && !info.IsLiveAt(now)
             && !await tracking.ExpireSessionAsync(sessionId, info.IdleExpiresAt, cancellationToken).ConfigureAwait(false);
             attempt++)
        {
            info = await tracking.GetInfoAsync(sessionId, cancellationToken).ConfigureAwait(false);
        }

        return info;
    }

    /// <summary>
    /// Looks at the session whose end check this sweep took: one still live is checked again when it would end next; one
    /// that ended is reported and leaves its user's index. Returns whether an end was reported.
    /// </summary>
    private async Task<bool> CheckEndAsync(ISessionTrackingDriver tracking, string sessionId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var info = await EndedEverywhereAsync(
            tracking, sessionId, await tracking.GetInfoAsync(sessionId, cancellationToken).ConfigureAwait(false), now, cancellationToken).ConfigureAwait(false);
        if (info is null)
        {
            // Purged before any sweep saw it: nothing is left to say who it was.
            return false;
        }

        if (info.IsLiveAt(now))
        {
            await tracking.ScheduleEndCheckAsync(sessionId, info.EndsAt, cancellationToken).ConfigureAwait(false);
            return false;
        }

        var (reason, endedAt) = info.Destroyed
            ? (SessionEndReason.Destroyed, now)
            : info.AbsoluteExpiresAt is { } absolute && absolute <= info.IdleExpiresAt
                ? (SessionEndReason.AbsoluteTimeout, absolute)
                : (SessionEndReason.IdleTimeout, info.IdleExpiresAt);
        if (info.UserId is { } userId)
        {
            await tracking.RemoveFromUserIndexAsync(userId, [sessionId], cancellationToken).ConfigureAwait(false);
        }

        await ReportEndedAsync(sessionId, info.UserId, reason, endedAt).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Puts end checks a sweep took back into the schedule, due at <paramref name="now"/>, within their own
    /// <see cref="AsmSessionOptions.IOTimeout"/> (the sweep's token may be the one that stopped it); a check that cannot
    /// be put back is logged, and that session's end is not reported.
    /// </summary>
    private async Task ReturnEndChecksAsync(ISessionTrackingDriver tracking, IEnumerable<string> sessionIds, DateTimeOffset now)
    {
        using var timeout = new CancellationTokenSource(_options.IOTimeout, services.Time);
        foreach (var sessionId in sessionIds)
        {
            try
            {
                await tracking.ScheduleEndCheckAsync(sessionId, now, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.EndCheckReturnFailed(_logger, SessionKey.Hash(sessionId), ex);
            }
        }
    }

    /// <summary>Raises <see cref="AsmSessionEvents.OnSessionEnded"/>; a handler's exception is logged, never thrown.</summary>
    private async Task ReportEndedAsync(string sessionId, string? userId, SessionEndReason reason, DateTimeOffset endedAt)
    {
        services.Metrics.Ended(reason);
        var hash = SessionKey.Hash(sessionId);
        Log.SessionEnded(_logger, hash, reason);
        try
        {
            await _options.Events.SessionEnded(new SessionEndedContext(sessionId, userId, reason, endedAt, provider)).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.SessionEndedHandlerFailed(_logger, hash, ex);
        }
    }

    private AsmSessionInfo ToPublic(StoredSessionInfo info)
    {
        var lastAccessed = info.IdleExpiresAt - _options.IdleTimeout;
        return new AsmSessionInfo(
            info.SessionId,
            info.UserId,
            info.CreatedAt,
            lastAccessed > info.CreatedAt ? lastAccessed : info.CreatedAt,
            info.IdleExpiresAt,
            info.AbsoluteExpiresAt,
            services.Driver is EncryptingSessionDriver encrypting ? encrypting.OpenProfiles(info.SessionId, info.Profiles) : info.Profiles);
    }
}
