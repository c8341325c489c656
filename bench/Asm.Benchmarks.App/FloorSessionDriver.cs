using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using Asm.Caching.Sessions;
using StackExchange.Redis;

namespace Asm.Benchmarks.App;

/// <summary>
/// The floor rows' storage: Asm's own session pipeline over the least a Redis session driver can do. A load is one
/// plain <c>HGETALL</c> of the session's values and profiles, a commit one plain <c>HSET</c> of what changed; nothing
/// is checked (no secret, no expiry, no corrupt record), no lock is taken (every lease is granted), nothing expires.
/// One round trip of the cheapest commands per load and per commit: no driver that asks Redis on every request, as a
/// shared store must to keep Asm's promises, does less, so a ratio this row does not reach is out of reach for Asm on
/// this machine. No store to run.
/// </summary>
/// <remarks>
/// With <paramref name="checkedWrites"/>, a commit is instead the least write that keeps the promises a lockless
/// commit makes (<see cref="CheckedWrite"/>): it refuses a session that has ended, and slides its idle expiry. A write
/// that depends on what Redis holds must run in Redis in one step, so it is a script; a plain <c>HSET</c> would bring a
/// destroyed or expired session back.
/// </remarks>
internal sealed class FloorSessionDriver(string configuration, bool checkedWrites = false) : ISessionDriver
{
    /// <summary>
    /// Writes values into a session only while it lives (not destroyed, its idle expiry ahead), and slides that expiry.
    /// KEYS[1] session hash. ARGV[1] now (unix ms), ARGV[2] idle timeout (ms), then field, value pairs. Returns 1, or 0
    /// when the session has ended.
    /// </summary>
    private const string CheckedWrite = """
        local m = redis.call('HMGET', KEYS[1], 'ie', 'x')
        local now = tonumber(ARGV[1])
        if m[2] or not m[1] or tonumber(m[1]) <= now then return 0 end
        redis.call('HSET', KEYS[1], 'ie', string.format('%d', now + tonumber(ARGV[2])), unpack(ARGV, 3))
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return 1
        """;

    [SuppressMessage("Security", "CA5350", Justification = "Redis names a script by its SHA-1; no security rests on it.")]
    private static readonly byte[] CheckedWriteHash = SHA1.HashData(Encoding.UTF8.GetBytes(CheckedWrite));

    private const string Created = "c";
    private const string IdleExpiry = "ie";
    // Socket reads on the thread pool, as Asm's Redis driver connects (docs/drivers.md).
    private readonly Lazy<IDatabase> _database = new(() =>
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.SocketManager = SocketManager.ThreadPool;
        return ConnectionMultiplexer.Connect(options).GetDatabase();
    });

    public async ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken)
    {
        var fields = await _database.Value.HashGetAllAsync(KeyOf(request.Key.Id)).ConfigureAwait(false);
        if (fields.Length == 0)
        {
            return SessionLoadResult.Of(SessionLoadStatus.Unknown);
        }

        var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var profiles = new List<string>();
        var created = request.Now;
        foreach (var field in fields)
        {
            var name = (string)field.Name!;
            if (name == Created)
            {
                created = DateTimeOffset.FromUnixTimeMilliseconds((long)field.Value);
            }
            else if (name == IdleExpiry)
            {
                continue;
            }
            else if (name.StartsWith("p:", StringComparison.Ordinal))
            {
                profiles.Add(name[2..]);
            }
            else
            {
                values[name[2..]] = (byte[])field.Value!;
            }
        }

        return new SessionLoadResult
        {
            Status = SessionLoadStatus.Found,
            Values = values,
            CreatedAt = created,
            Profiles = profiles,
            Lease = request.Lease is { } lease ? lease with { Fence = 1 } : null,
        };
    }

    public async ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken)
    {
        var fields = new List<HashEntry>(request.Changes.Count + request.AddProfiles.Count + 2);
        if (request.CreateWithSecret is not null)
        {
            fields.Add(new HashEntry(Created, request.Now.ToUnixTimeMilliseconds()));
            fields.Add(new HashEntry(IdleExpiry, (request.Now + request.IdleTimeout).ToUnixTimeMilliseconds()));
        }

        foreach (var (name, value) in request.Changes)
        {
            fields.Add(new HashEntry("v:" + name, value ?? []));
        }

        foreach (var profile in request.AddProfiles)
        {
            fields.Add(new HashEntry("p:" + profile, 1));
        }

        if (checkedWrites && request.CreateWithSecret is null)
        {
            return await CheckedWriteAsync(request, fields).ConfigureAwait(false);
        }

        if (fields.Count > 0)
        {
            await _database.Value.HashSetAsync(KeyOf(request.SessionId), [.. fields]).ConfigureAwait(false);
        }

        return SessionCommitStatus.Committed;
    }

    private async ValueTask<SessionCommitStatus> CheckedWriteAsync(SessionCommitRequest request, List<HashEntry> fields)
    {
        var args = new RedisValue[2 + (fields.Count * 2)];
        args[0] = request.Now.ToUnixTimeMilliseconds();
        args[1] = (long)request.IdleTimeout.TotalMilliseconds;
        for (var i = 0; i < fields.Count; i++)
        {
            args[2 + (2 * i)] = fields[i].Name;
            args[3 + (2 * i)] = fields[i].Value;
        }

        RedisKey[] keys = [KeyOf(request.SessionId)];
        RedisResult written;
        try
        {
            written = await _database.Value.ScriptEvaluateAsync(CheckedWriteHash, keys, args).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            written = await _database.Value.ScriptEvaluateAsync(CheckedWrite, keys, args).ConfigureAwait(false);
        }

        return (long)written == 1 ? SessionCommitStatus.Committed : SessionCommitStatus.NotFound;
    }

    public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult(true);

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) =>
        throw new NotSupportedException("The floor driver serves the benchmark's reads and writes only.");

    public ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) =>
        throw new NotSupportedException("The floor driver serves the benchmark's reads and writes only.");

    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
        Task.Delay(maxWait, cancellationToken);

    private static RedisKey KeyOf(string sessionId) => Encoding.UTF8.GetBytes("floor:" + sessionId);
}
