using System.Buffers.Text;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Asm.Caching.Caching;
using Asm.Caching.Locking;
using Asm.Caching.Records;
using Asm.Caching.Sessions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Asm.Caching.Drivers.Redis;

/// <summary>
/// Keeps sessions and cache entries in Redis or a Redis Cluster. Every operation is atomic and one round trip: a load
/// without a lease one <c>HGETALL</c> (see <see cref="RedisRecordReader"/>), every other operation one Lua script
/// (<see cref="RedisScripts"/>, which also documents the stored layout). A load without a lease whose idle expiry is
/// due to slide runs the Load script after its read, and answers what the script does: two round trips. Redis expires
/// records itself, so there is nothing to sweep. Lock releases are published on
/// <c>&lt;InstanceName&gt;asm:released</c> and wake waiters in every process.
/// </summary>
internal sealed partial class RedisDriver : ISessionDriver, ISessionTrackingDriver, ICacheDriver, IDisposable
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly RedisConnection _connection;
    private readonly LockReleaseSignals _signals;
    private readonly TimeProvider _timeProvider;
    private readonly string _party = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(9));
    private readonly string _sessionPrefix;
    private readonly string _waiterPrefix;
    private readonly byte[] _cachePrefix;
    private readonly byte[] _escapedCachePrefix;
    private readonly ILogger _logger;
    private readonly int _waitForReplicas;

    public RedisDriver(IOptions<RedisDriverOptions> options, TimeProvider timeProvider, ILogger<RedisDriver> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var value = options.Value;
        var prefix = value.InstanceName ?? "";
        _logger = logger;
        _timeProvider = timeProvider;
        _signals = new LockReleaseSignals(timeProvider);
        _sessionPrefix = prefix + "s:{";
        _waiterPrefix = prefix + "w:{";
        _cachePrefix = Encoding.UTF8.GetBytes(prefix + "c:");
        _escapedCachePrefix = Encoding.UTF8.GetBytes(prefix + "c#");
        _connection = new RedisConnection(value, prefix + "asm:released", _signals.Signal, timeProvider, logger);
        _waitForReplicas = value.WaitForReplicas;
    }

    /// <summary>
    /// For tests only: leases judged by the caller's time (as the in-memory and filesystem drivers judge them) instead
    /// of Redis's <c>TIME</c>, so that a fake clock can drive them and the record's rules can be compared step for step.
    /// </summary>
    internal bool LeasesOnCallerClock { get; set; }

    /// <summary>
    /// For tests only: <see langword="false"/> sends every load through the <see cref="RedisScripts.Load"/> script, so
    /// that the reader a load without a lease uses (<see cref="RedisRecordReader"/>) can be compared with the script.
    /// </summary>
    internal bool ReadsWithoutScript { get; set; } = true;

    /// <summary>For tests: the lock releases this driver still sends again after their caller was told they failed.</summary>
    internal RedisGiveBacks GiveBacks => _connection.GiveBacks;

    /// <summary>The channel lock releases are published on (with the connection's channel prefix, if it has one).</summary>
    internal string ReleaseChannel => _connection.ReleaseChannel;

    /// <summary>
    /// This driver's name in a lock's waiting line: a release keeps the lock for the first party in line, and a load of
    /// that party takes it (see <see cref="RedisScripts"/>). One per driver, so the requests of one app are one party.
    /// </summary>
    internal string Party => _party;

    /// <summary>The Redis key of a session's hash.</summary>
    internal string SessionKeyOf(string sessionId) => _sessionPrefix + sessionId + "}";

    /// <summary>The Redis key of a session lock's waiting line (in the slot of its hash).</summary>
    internal string WaiterKeyOf(string sessionId) => _waiterPrefix + sessionId + "}";

    /// <summary>
    /// The Redis key of a cache entry: the prefix and the key's UTF-8 bytes. A key that is not valid UTF-16 (a lone
    /// surrogate) has no UTF-8 form, so it is stored under another prefix as base64url of its UTF-16 code units;
    /// two different keys never share an entry.
    /// </summary>
    internal byte[] CacheKeyOf(string key)
    {
        try
        {
            return [.. _cachePrefix, .. StrictUtf8.GetBytes(key)];
        }
        catch (EncoderFallbackException)
        {
            var units = new byte[key.Length * 2];
            for (var i = 0; i < key.Length; i++)
            {
                units[2 * i] = (byte)key[i];
                units[(2 * i) + 1] = (byte)(key[i] >> 8);
            }

            return [.. _escapedCachePrefix, .. Encoding.ASCII.GetBytes(Base64Url.EncodeToString(units))];
        }
    }

    public async ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var lease = request.Lease;
        if (lease is { Token.Length: 0 })
        {
            throw new ArgumentException("A lease token must not be empty.", nameof(request));
        }

        var sessionId = request.Key.Id;

        // A read that must slide the idle expiry goes on with the script: one load, one OperationTimeout for both.
        var started = Stopwatch.GetTimestamp();
        if (lease is null && ReadsWithoutScript && await ReadAsync(request, started, cancellationToken).ConfigureAwait(false) is { } read)
        {
            return read;
        }

        var result = await _connection.EvaluateAsync(
            RedisScripts.Load,
            SessionKeyOf(sessionId),
            WaiterKeyOf(sessionId),
            [
                request.Key.Secret,
                SessionRecord.Ms(request.Now),
                SessionRecord.Ms(request.IdleTimeout),
                lease?.Token ?? "",
                lease is null ? 0 : SessionRecord.Ms(lease.Duration),
                LeaseClock(request.Now),
                SessionRecord.SlideThreshold(request.IdleTimeout),
                _party,
            ],
            started,
            "session load",
            released: null,
            giveBackFor: null,
            cancellationToken).ConfigureAwait(false);

        var reply = (RedisResult[]?)result ?? [];
        var status = reply.Length == 0 ? SessionLoadStatus.Corrupt : ToLoadStatus((long)reply[0]);
        if (reply.Length > 1 && !RedisRecordReader.IsTime((long)reply[1]))
        {
            // A creation time (or a closed zombie window) past what a DateTimeOffset holds: unreadable, as the reader judges it.
            status = SessionLoadStatus.Corrupt;
        }

        if (status == SessionLoadStatus.ZombieExpired)
        {
            return reply.Length > 1
                ? new SessionLoadResult { Status = status, ZombieExpiredAt = SessionRecord.Time((long)reply[1]) }
                : SessionLoadResult.Of(status);
        }

        if (reply.Length <= 1 || status == SessionLoadStatus.Corrupt)
        {
            if (status == SessionLoadStatus.Corrupt)
            {
                CorruptSession(SessionKey.Hash(sessionId));
            }

            return SessionLoadResult.Of(status);
        }

        var fence = (long)reply[2];
        var zombieProfile = (string?)reply[4];
        var profileCount = (int)(long)reply[7];
        var profiles = new string[profileCount];
        for (var i = 0; i < profileCount; i++)
        {
            profiles[i] = (string?)reply[8 + i] ?? "";
        }

        var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        for (var i = 8 + profileCount; i + 1 < reply.Length; i += 2)
        {
            values[(string?)reply[i] ?? ""] = (byte[]?)reply[i + 1] ?? [];
        }

        return new SessionLoadResult
        {
            Status = status,
            Values = values,
            CurrentSecret = status == SessionLoadStatus.Zombie ? (string?)reply[3] : null,
            ZombieProfile = status == SessionLoadStatus.Zombie && zombieProfile is { Length: > 0 } ? zombieProfile : null,
            ZombieIsLatest = status == SessionLoadStatus.Zombie && (long)reply[6] == 1,
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds((long)reply[1]),
            Profiles = profiles,
            Lease = lease is null ? null : lease with { Fence = fence },
            UserId = (string?)reply[5] is { Length: > 0 } userId ? userId : null,
        };
    }

    /// <summary>
    /// A load without a lease as a pure read: one <c>HGETALL</c>, judged by the record's own rules
    /// (<see cref="SessionRecord.Load(SessionLoadRequest, out bool, bool)"/>, which the <see cref="RedisScripts.Load"/>
    /// script follows step for step). <see langword="null"/> when the load must write (its idle expiry is due to
    /// slide): the script then loads it, atomically.
    /// </summary>
    private async ValueTask<SessionLoadResult?> ReadAsync(SessionLoadRequest request, long started, CancellationToken cancellationToken)
    {
        var fields = await _connection.ReadHashAsync(SessionKeyOf(request.Key.Id), started, "session load", cancellationToken).ConfigureAwait(false);
        if (fields is { Length: 0 })
        {
            return SessionLoadResult.Of(SessionLoadStatus.Unknown);
        }

        if (fields is null || !RedisRecordReader.TryRead(fields, out var record))
        {
            CorruptSession(SessionKey.Hash(request.Key.Id));
            return SessionLoadResult.Of(SessionLoadStatus.Corrupt);
        }

        // A creation time no DateTimeOffset holds makes a load that finds the session Corrupt, as the script's reply does.
        var createdAt = record.CreatedAt;
        var readable = RedisRecordReader.IsTime(createdAt);
        record.CreatedAt = readable ? createdAt : 0;
        var result = record.Load(request, out var changed);
        if (changed)
        {
            return null;
        }

        if (!readable && result.Status is SessionLoadStatus.Found or SessionLoadStatus.Zombie)
        {
            CorruptSession(SessionKey.Hash(request.Key.Id));
            return SessionLoadResult.Of(SessionLoadStatus.Corrupt);
        }

        return result;
    }

    public async ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.CreateWithSecret is { Length: 0 })
        {
            throw new ArgumentException("The secret of a new session must not be empty.", nameof(request));
        }

        if (request.Lease is { Token.Length: 0 })
        {
            throw new ArgumentException("A lease token must not be empty.", nameof(request));
        }

        SessionValueName.ValidateAll(request);
        var args = new List<RedisValue>(13 + (request.Changes.Count * 3) + request.AddProfiles.Count)
        {
            SessionRecord.Ms(request.Now),
            SessionRecord.Ms(request.IdleTimeout),
            request.CreateWithSecret ?? "",
            request.AbsoluteExpiresAt is { } absolute ? SessionRecord.Ms(absolute) : "",
            request.Lease?.Token ?? "",
            request.Lease?.Fence ?? 0,
            request.ReleaseLock ? "1" : "0",
            request.Clear ? "1" : "0",
            Math.Max(0, request.MaxProfiles),
            _connection.ReleaseChannel,
            request.SessionId,
            LeaseClock(request.Now),
            request.Changes.Count,
        };
        foreach (var (name, value) in request.Changes)
        {
            args.Add(value is null ? "d" : "s");
            args.Add(name);
            args.Add(value ?? RedisValue.EmptyString);
        }

        foreach (var profile in request.AddProfiles)
        {
            args.Add(profile);
        }

        var key = SessionKeyOf(request.SessionId);
        // With replicas to wait for, the commit is not done when it is sent: nothing may build on it until they have it.
        var observer = _waitForReplicas > 0 ? null : request.ReleaseObserver;
        var result = await _connection.EvaluateAsync(
            RedisScripts.Commit, key, WaiterKeyOf(request.SessionId), [.. args], "session commit", observer, giveBackFor: null, cancellationToken).ConfigureAwait(false);
        var status = ToCommitStatus((long)result);
        if (status == SessionCommitStatus.Committed && _waitForReplicas > 0)
        {
            await _connection.WaitForReplicasAsync(key, _waitForReplicas, "session commit", cancellationToken).ConfigureAwait(false);
        }

        return status;
    }

    public async ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(lease);
        var result = await _connection.EvaluateAsync(
            RedisScripts.Renew,
            SessionKeyOf(sessionId),
            [SessionRecord.Ms(now), lease.Token, lease.Fence, SessionRecord.Ms(lease.Duration), LeaseClock(now)],
            "lock renewal",
            cancellationToken).ConfigureAwait(false);
        return (long)result == 1;
    }

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) =>
        ReleaseLockAsync(sessionId, lease, observer: null, cancellationToken);

    public async ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, ILockReleaseObserver? observer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(lease);
        await _connection.EvaluateAsync(
            RedisScripts.Release,
            SessionKeyOf(sessionId),
            WaiterKeyOf(sessionId),
            [lease.Token, _connection.ReleaseChannel, sessionId, LeaseClock(_timeProvider.GetUtcNow())],
            "lock release",
            observer,
            giveBackFor: lease.Duration,
            cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.NewSecret is not { Length: > 0 })
        {
            throw new ArgumentException("The new secret must not be empty.", nameof(request));
        }

        var result = await _connection.EvaluateAsync(
            RedisScripts.Regenerate, SessionKeyOf(request.Key.Id), RegenerateArguments(request), "session regeneration", cancellationToken).ConfigureAwait(false);
        return ToCommitStatus((long)result);
    }

    /// <summary>The ARGV of <see cref="RedisScripts.Regenerate"/> (and, after the user id, of <see cref="RedisScripts.Bind"/>).</summary>
    private static RedisValue[] RegenerateArguments(SessionRegenerateRequest request) =>
    [
        request.Key.Secret,
        request.NewSecret,
        SessionRecord.Ms(request.Now),
        SessionRecord.Ms(request.ZombieExpiresAt),
        Math.Max(0, request.MaxZombies),
        request.Profile ?? "",
    ];

    /// <summary>
    /// Writes the session's tombstone. A Redis at its memory limit (<c>noeviction</c>) refuses that write (<c>OOM</c>):
    /// the record is then deleted, which needs no memory, so that a log-out still ends the session. Its cookie then
    /// reads as unknown rather than destroyed, and a commit in flight is refused all the same (it needs the record).
    /// </summary>
    public async ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        try
        {
            await _connection.EvaluateAsync(
                RedisScripts.Destroy,
                SessionKeyOf(sessionId),
                WaiterKeyOf(sessionId),
                [SessionRecord.Ms(now), SessionRecord.Ms(tombstoneExpiresAt), _connection.ReleaseChannel, sessionId],
                "session destruction",
                cancellationToken).ConfigureAwait(false);
        }
        catch (RedisDriverException ex) when (ex.InnerException is RedisServerException refused && refused.Message.StartsWith("OOM", StringComparison.Ordinal))
        {
            await _connection.DeleteAsync(SessionKeyOf(sessionId), "session destruction", cancellationToken).ConfigureAwait(false);
            SessionEndWrittenAsDeletion(SessionKey.Hash(sessionId), ex);
        }
    }

    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        // Normally connected (and subscribed) by the load that found the lock busy; a lost wake-up costs maxWait.
        _connection.EnsureStarted();
        return _signals.WaitAsync(sessionId, maxWait, cancellationToken);
    }

    public async ValueTask<byte[]?> GetAsync(string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        var result = await _connection.EvaluateAsync(
            RedisScripts.CacheGet, CacheKeyOf(key), [SessionRecord.Ms(now), "1"], "cache read", cancellationToken).ConfigureAwait(false);
        return result.IsNull ? null : (byte[]?)result;
    }

    public async ValueTask SetAsync(string key, byte[] value, CacheEntryExpiration expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        await _connection.EvaluateAsync(
            RedisScripts.CacheSet,
            CacheKeyOf(key),
            [
                value,
                SessionRecord.Ms(expiration.Now),
                expiration.ExpiresAt is { } expiresAt ? SessionRecord.Ms(expiresAt) : "",
                expiration.AbsoluteExpiresAt is { } absolute ? SessionRecord.Ms(absolute) : "",
                expiration.Sliding is { } sliding ? SessionRecord.Ms(sliding) : "",
            ],
            "cache write",
            cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask RefreshAsync(string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        await _connection.EvaluateAsync(
            RedisScripts.CacheGet, CacheKeyOf(key), [SessionRecord.Ms(now), "0"], "cache refresh", cancellationToken).ConfigureAwait(false);
    }

    public ValueTask RemoveAsync(string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _connection.DeleteAsync(CacheKeyOf(key), "cache removal", cancellationToken);
    }

    public void Dispose() => _connection.Dispose();

    private RedisValue LeaseClock(DateTimeOffset now) => LeasesOnCallerClock ? SessionRecord.Ms(now) : RedisValue.EmptyString;

    /// <summary>
    /// The status a session script answered with. The scripts' codes are the enum's values (a test checks them); a
    /// code the enum does not define means the scripts and this driver disagree, which is an error, never Corrupt.
    /// </summary>
    internal static SessionLoadStatus ToLoadStatus(long code) =>
        code is >= 0 and <= int.MaxValue && Enum.IsDefined((SessionLoadStatus)code)
            ? (SessionLoadStatus)code
            : throw UnknownCode("load", code);

    /// <summary>The status a commit or regeneration script answered with; an unknown code is an error.</summary>
    internal static SessionCommitStatus ToCommitStatus(long code) =>
        code is >= 0 and <= int.MaxValue && Enum.IsDefined((SessionCommitStatus)code)
            ? (SessionCommitStatus)code
            : throw UnknownCode("commit", code);

    private static RedisDriverException UnknownCode(string operation, long code) =>
        new($"A session {operation} script answered with status code {code}, which this driver does not know: the scripts in Redis and this driver disagree.");

    [LoggerMessage(EventId = 312, Level = LogLevel.Warning,
        Message = "Redis at its memory limit refused the end of session {SessionHash}; its record was deleted instead, so its cookie reads as unknown.")]
    private partial void SessionEndWrittenAsDeletion(string sessionHash, Exception exception);

    [LoggerMessage(EventId = 310, Level = LogLevel.Warning, Message = "Session {SessionHash} is stored in a form this driver cannot read; it is reported as corrupt.")]
    private partial void CorruptSession(string sessionHash);
}
