using System.Security.Cryptography;
using System.Text;
using Asm.Caching.Records;
using Asm.Caching.Sessions;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Asm.Caching.Drivers.Redis;

/// <summary>
/// User binding, user indexes and the end-check schedule on Redis, each operation one script on one key, so that no
/// operation needs two slots of a Cluster.
/// </summary>
/// <remarks>
/// <para>
/// The user the session is bound to is field <c>u</c> of the session's hash, set by <see cref="RedisScripts.Bind"/> in the
/// same script that regenerates the key.
/// </para>
/// <para>
/// A user index is a set of session ids at <c>&lt;InstanceName&gt;u:{&lt;SHA-256 of the user id, hex&gt;}</c>: the hash in
/// braces is the Cluster hash tag, so a user's index lives in one slot whatever the id holds (braces, NUL, 16 k
/// characters), and the id itself never reaches a key name. Redis drops the set when it empties.
/// </para>
/// <para>
/// The end-check schedule is 16 sorted sets, <c>&lt;InstanceName&gt;e:{0}</c> to <c>e:{f}</c>, spread over the Cluster's
/// slots; a session's checks go to the set picked by the first hex digit of the SHA-256 of its id, scored by the due time
/// (unix ms). <c>ZREM</c> answering 1 is the claim, in <see cref="TrackingScripts.Claim"/> and in
/// <see cref="TrackingScripts.ClaimDue"/>, which takes the due members out in the same script.
/// </para>
/// </remarks>
internal sealed partial class RedisDriver
{
    private const int EndCheckSets = 16;

    private string InstancePrefix => _sessionPrefix[..^"s:{".Length];

    /// <summary>The Redis key of the index of <paramref name="userId"/>.</summary>
    internal string UserIndexKeyOf(string userId) =>
        InstancePrefix + "u:{" + Convert.ToHexStringLower(SHA256.HashData(StrictUtf8.GetBytes(userId))) + "}";

    /// <summary>The Redis key of the end-check set that holds the checks of <paramref name="sessionId"/>.</summary>
    internal string EndCheckKeyOf(string sessionId) => EndCheckKey(SHA256.HashData(Encoding.ASCII.GetBytes(sessionId))[0] & (EndCheckSets - 1));

    public async ValueTask<SessionBindResult> BindUserAsync(SessionRegenerateRequest request, string userId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(userId);
        var reply = (RedisResult[]?)await _connection.EvaluateAsync(
            RedisScripts.Bind,
            SessionKeyOf(request.Key.Id),
            [userId, .. RegenerateArguments(request)],
            "session binding",
            cancellationToken).ConfigureAwait(false) ?? [];
        return new SessionBindResult(ToCommitStatus((long)reply[0]), (string?)reply[1] is { Length: > 0 } before ? before : null);
    }

    public async ValueTask<StoredSessionInfo?> GetInfoAsync(string sessionId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        var result = await _connection.EvaluateReadOnlyAsync(RedisScripts.Info, SessionKeyOf(sessionId), [], "session info", cancellationToken).ConfigureAwait(false);
        if (result.IsNull || (RedisResult[]?)result is not { Length: >= 5 } reply)
        {
            return null;
        }

        var absolute = (string?)reply[3];
        return new StoredSessionInfo(
            sessionId,
            (string?)reply[4] is { Length: > 0 } userId ? userId : null,
            (long)reply[0] == 1,
            DateTimeOffset.FromUnixTimeMilliseconds((long)reply[1]),
            DateTimeOffset.FromUnixTimeMilliseconds((long)reply[2]),
            string.IsNullOrEmpty(absolute) ? null : DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(absolute, System.Globalization.CultureInfo.InvariantCulture)),
            [.. reply.Skip(5).Select(p => (string?)p ?? "")]);
    }

    public async ValueTask<bool> ExpireSessionAsync(string sessionId, DateTimeOffset idleExpiresAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        return (long)await _connection.EvaluateAsync(
            TrackingScripts.Expire, SessionKeyOf(sessionId), [SessionRecord.Ms(idleExpiresAt)], "session expiry", cancellationToken).ConfigureAwait(false) == 1;
    }

    public async ValueTask AddToUserIndexAsync(string userId, string sessionId, CancellationToken cancellationToken) =>
        await _connection.EvaluateAsync(TrackingScripts.Add, UserIndexKeyOf(userId), [sessionId], "user index update", cancellationToken).ConfigureAwait(false);

    public async ValueTask<IReadOnlyList<string>> GetUserIndexAsync(string userId, CancellationToken cancellationToken)
    {
        var result = await _connection.EvaluateReadOnlyAsync(TrackingScripts.Members, UserIndexKeyOf(userId), [], "user index read", cancellationToken).ConfigureAwait(false);
        return [.. ((RedisResult[]?)result ?? []).Select(r => (string?)r ?? "")];
    }

    public async ValueTask RemoveFromUserIndexAsync(string userId, IReadOnlyCollection<string> sessionIds, CancellationToken cancellationToken)
    {
        if (sessionIds.Count > 0)
        {
            await _connection.EvaluateAsync(
                TrackingScripts.Remove, UserIndexKeyOf(userId), [.. sessionIds.Select(id => (RedisValue)id)], "user index update", cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask ScheduleEndCheckAsync(string sessionId, DateTimeOffset at, CancellationToken cancellationToken) =>
        await _connection.EvaluateAsync(
            TrackingScripts.Schedule, EndCheckKeyOf(sessionId), [SessionRecord.Ms(at), sessionId], "end check scheduling", cancellationToken).ConfigureAwait(false);

    public async ValueTask<bool> ClaimEndCheckAsync(string sessionId, CancellationToken cancellationToken) =>
        (long)await _connection.EvaluateAsync(
            TrackingScripts.Claim, EndCheckKeyOf(sessionId), [sessionId], "end check claim", cancellationToken).ConfigureAwait(false) == 1;

    /// <remarks>
    /// The 16 sets are claimed from at once, each in its own script (on a Cluster, on the master of its slot). When some
    /// fail (their master is down, or failing over) and others took checks out, those taken are returned, not lost
    /// with the failure: the failed sets keep theirs for a later sweep. Only when every set fails does this throw.
    /// </remarks>
    public async ValueTask<IReadOnlyList<string>> ClaimDueEndChecksAsync(DateTimeOffset now, int max, CancellationToken cancellationToken)
    {
        var claims = Enumerable.Range(0, EndCheckSets).Select(set => _connection.EvaluateAsync(
            TrackingScripts.ClaimDue, EndCheckKey(set), [SessionRecord.Ms(now), max], "end check claim", cancellationToken).AsTask()).ToList();
        try
        {
            await Task.WhenAll(claims).ConfigureAwait(false);
        }
        catch (Exception) when (claims.Exists(claim => claim.IsCompletedSuccessfully))
        {
            EndCheckSetsFailed(claims.Count(claim => !claim.IsCompletedSuccessfully), EndCheckSets, claims.First(claim => !claim.IsCompletedSuccessfully).Exception?.InnerException);
        }

        return [.. claims.Where(claim => claim.IsCompletedSuccessfully).SelectMany(claim => (RedisResult[]?)claim.Result ?? []).Select(r => (string?)r ?? "")];
    }

    [LoggerMessage(EventId = 311, Level = LogLevel.Warning,
        Message = "Taking due end checks failed on {Failed} of the {Sets} end-check sets; the checks taken from the others are reported, the failed sets' by a later sweep.")]
    private partial void EndCheckSetsFailed(int failed, int sets, Exception? exception);

    private string EndCheckKey(int set) => InstancePrefix + "e:{" + set.ToString("x", System.Globalization.CultureInfo.InvariantCulture) + "}";

    /// <summary>The one-key scripts of user indexes and the end-check schedule.</summary>
    internal static class TrackingScripts
    {
        /// <summary>
        /// KEYS[1] session hash. ARGV[1] the idle expiry (ms) a sweep read. Sets the idle expiry (<c>ie</c>) to 0, the
        /// Unix epoch, so that the session is expired for every clock, unless the record is not a hash, is a tombstone
        /// or its idle expiry has moved since. Returns 1 when it did, else 0. The field keeps its form (a decimal
        /// integer): the stored layout is unchanged. A Redis at its memory limit refuses the write (<c>OOM</c>): the
        /// record is deleted instead, which needs no memory, as a destroy's is (see <see cref="DestroyAsync"/>).
        /// </summary>
        public const string Expire = """
            local fields = redis.pcall('HMGET', KEYS[1], 'ie', 'x')
            if fields.err or fields[1] ~= ARGV[1] or fields[2] then return 0 end
            local set = redis.pcall('HSET', KEYS[1], 'ie', '0')
            if type(set) == 'table' and set.err then redis.call('DEL', KEYS[1]) end
            return 1
            """;

        /// <summary>KEYS[1] user index. ARGV[1] session id. Returns 1 when added, 0 when present.</summary>
        public const string Add = "return redis.call('SADD', KEYS[1], ARGV[1])";

        /// <summary>KEYS[1] user index. Returns its session ids.</summary>
        public const string Members = "return redis.call('SMEMBERS', KEYS[1])";

        /// <summary>KEYS[1] user index. ARGV session ids. Returns how many were removed (the set goes when it empties).</summary>
        public const string Remove = "return redis.call('SREM', KEYS[1], unpack(ARGV))";

        /// <summary>KEYS[1] end-check set. ARGV[1] due time (ms), ARGV[2] session id. Returns 1.</summary>
        public const string Schedule = "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) return 1";

        /// <summary>KEYS[1] end-check set. ARGV[1] session id. Returns 1 to the one caller that took the check, else 0.</summary>
        public const string Claim = "return redis.call('ZREM', KEYS[1], ARGV[1])";

        /// <summary>
        /// KEYS[1] end-check set. ARGV[1] now (ms), ARGV[2] most to take. Takes the checks due by now out of the set and
        /// returns their session ids: one script, so two instances never take the same check.
        /// </summary>
        public const string ClaimDue = """
            local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
            if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
            return due
            """;
    }
}
