using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Asm.Caching.Sessions;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Asm.Caching.Drivers.Redis;

/// <summary>
/// The driver's one connection to Redis: made on the first operation, kept reconnecting by the client
/// (<c>abortConnect=false</c>), subscribed once to the lock-release channel. Every Redis failure leaves here as a
/// <see cref="RedisDriverException"/> that names Redis and its endpoints. All StackExchange.Redis use of the driver
/// goes through this class and <see cref="RedisDriver"/>. A multiplexer from
/// <see cref="RedisDriverOptions.ConnectionMultiplexerFactory"/> belongs to the application: disposing detaches this
/// class's subscription handler and event handlers from it and leaves it open.
/// </summary>
internal sealed partial class RedisConnection : IDisposable
{
    /// <summary>The SHA-1 of each script run, keyed by the script string itself (by reference: its text is not hashed).</summary>
    private static readonly ConditionalWeakTable<string, byte[]> ScriptHashes = [];

    [SuppressMessage("Security", "CA5350", Justification = "Redis names a script by its SHA-1; no security rests on it.")]
    private static readonly ConditionalWeakTable<string, byte[]>.CreateValueCallback ScriptHash =
        static script => SHA1.HashData(Encoding.UTF8.GetBytes(script));

    /// <summary>
    /// A read (the <c>HGETALL</c> of a load without a lease, a script that only reads: a session's info, a user's index)
    /// and the health check's <c>PING</c> go to the master of their key, never to a replica: the client's default
    /// (<c>PreferMaster</c>) sends a command to a replica while the master's connection is down, where a read may find an
    /// older record than the master holds (the replica is behind, or its link is cut). Without the master they fail, as
    /// with one server, and also right after a failover until the client learns of the promotion. Scripts keep the default: one sent to a
    /// replica that is still a replica is refused (<c>READONLY</c>), having run nothing, and one sent to a replica just
    /// promoted runs there, where demanding the master would fail until the client learns of the promotion.
    /// </summary>
    private const CommandFlags OnMaster = CommandFlags.DemandMaster;

    /// <summary>The answers of <see cref="RefusedForNow"/>.</summary>
    private static readonly string[] RefusedForNowAnswers = ["READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "NOREPLICAS", "BUSY", "MOVED", "ASK"];

    private readonly RedisDriverOptions _options;
    private readonly RedisChannel _releaseChannel;
    private readonly Action<string> _onReleased;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Action<RedisChannel, RedisValue> _releaseHandler;
    private readonly TimeProvider _timeProvider;
    private readonly RedisGiveBacks _giveBacks;
    private long _relearnedAt;
    private Task<IConnectionMultiplexer>? _connecting;
    private IConnectionMultiplexer? _connection;
    private bool _owned;
    private bool _disposed;
    private string _endPoints;
    private string _publishedReleaseChannel;

    public RedisConnection(RedisDriverOptions options, string releaseChannel, Action<string> onReleased, TimeProvider timeProvider, ILogger logger)
    {
        _options = options;
        _timeProvider = timeProvider;
        _giveBacks = new RedisGiveBacks(timeProvider, RefusedForNow, Relearn);
        _relearnedAt = timeProvider.GetTimestamp() - (long)(RedisGiveBacks.Interval.TotalSeconds * timeProvider.TimestampFrequency);
        _releaseChannel = new RedisChannel(releaseChannel, RedisChannel.PatternMode.Literal);
        _onReleased = onReleased;
        _releaseHandler = (_, message) => _onReleased((string?)message ?? "");
        _logger = logger;
        var configuration = options.ConnectionMultiplexerFactory is null ? ConfigurationOf(options) : null;
        _endPoints = configuration is null ? "(from ConnectionMultiplexerFactory)" : FormatEndPoints(configuration.EndPoints);
        _publishedReleaseChannel = PrefixedChannel(configuration?.ChannelPrefix, releaseChannel);
    }

    /// <summary>
    /// The channel the scripts publish lock releases on: the release channel with the connection's
    /// <c>ChannelPrefix</c> in front, as the client prefixes the channel it subscribes to (a script's <c>PUBLISH</c>
    /// is not prefixed). Known from the configuration, or for a multiplexer from
    /// <see cref="RedisDriverOptions.ConnectionMultiplexerFactory"/> once it is connected.
    /// </summary>
    public string ReleaseChannel => Volatile.Read(ref _publishedReleaseChannel);

    /// <summary>The endpoints, for messages: the configured ones, or those of the factory's multiplexer.</summary>
    public string EndPoints => Volatile.Read(ref _endPoints);

    /// <summary>The lock releases this connection still sends again (see <see cref="RedisGiveBacks"/>).</summary>
    internal RedisGiveBacks GiveBacks => _giveBacks;

    /// <summary>
    /// Runs <paramref name="script"/> on the node that owns <paramref name="key"/>: <c>EVALSHA</c> with the script's
    /// SHA-1, computed once per script; a node that does not know the script (its first call there, a restart,
    /// <c>SCRIPT FLUSH</c>, a failover) answers <c>NOSCRIPT</c>, having run nothing, and the call is sent again with
    /// the script's text, which the client loads.
    /// </summary>
    /// <remarks>
    /// The client's own by-text call looks the script up in a table keyed by its text, and so hashes the whole text
    /// (several KB) on every call: about a tenth of the app's CPU under load, measured with <c>perf</c>
    /// (docs/benchmarks.md).
    /// </remarks>
    public ValueTask<RedisResult> EvaluateAsync(
        string script, RedisKey key, RedisValue[] args, string operation, CancellationToken cancellationToken) =>
        EvaluateAsync(script, key, companion: null, args, operation, cancellationToken);

    /// <summary>
    /// As <see cref="EvaluateAsync(string, RedisKey, RedisValue[], string, CancellationToken)"/>, for a script that only
    /// reads: sent to the master of its key, never to a replica, as a read without a script is (see <see cref="OnMaster"/>).
    /// </summary>
    public ValueTask<RedisResult> EvaluateReadOnlyAsync(
        string script, RedisKey key, RedisValue[] args, string operation, CancellationToken cancellationToken) =>
        EvaluateAsync(script, key, companion: null, args, Stopwatch.GetTimestamp(), operation, released: null, giveBackFor: null, OnMaster, cancellationToken);

    /// <summary>
    /// As <see cref="EvaluateAsync(string, RedisKey, RedisValue[], string, CancellationToken)"/>, with a second key in
    /// the slot of the first (same hash tag) that the script can do without. While a Cluster slot migrates, a node
    /// refuses a script whose keys are not all on it (<c>TRYAGAIN</c>), having run nothing: the script is then sent
    /// again with <paramref name="key"/> alone. <see cref="RedisDriverOptions.OperationTimeout"/> bounds the whole call,
    /// the wait for a first connection included, however many times it is sent.
    /// </summary>
    public ValueTask<RedisResult> EvaluateAsync(
        string script, RedisKey key, RedisKey? companion, RedisValue[] args, string operation, CancellationToken cancellationToken) =>
        EvaluateAsync(script, key, companion, args, Stopwatch.GetTimestamp(), operation, released: null, giveBackFor: null, cancellationToken);

    /// <summary>
    /// As <see cref="EvaluateAsync(string, RedisKey, RedisKey?, RedisValue[], string, CancellationToken)"/>, for a
    /// script that releases a lock: tells <paramref name="released"/> once the script is queued on the connection, ahead
    /// of every command sent after it (see <see cref="ILockReleaseObserver"/>). A script sent again
    /// (<c>NOSCRIPT</c>, <c>TRYAGAIN</c>) no longer has that place; storage's own checks then order it (a load that
    /// overtakes a release is refused and waits for it). <paramref name="giveBackFor"/> is set for a script that only
    /// gives a lease back, which its token guards, so that running it late or twice never harms: the lease's duration,
    /// for which a give-back that may not have run is sent again (see <see cref="RedisGiveBacks"/>), so that the lock
    /// does not stay held until its lease ends.
    /// </summary>
    public ValueTask<RedisResult> EvaluateAsync(
        string script, RedisKey key, RedisKey? companion, RedisValue[] args, string operation, ILockReleaseObserver? released, TimeSpan? giveBackFor, CancellationToken cancellationToken) =>
        EvaluateAsync(script, key, companion, args, Stopwatch.GetTimestamp(), operation, released, giveBackFor, cancellationToken);

    /// <summary>
    /// As <see cref="EvaluateAsync(string, RedisKey, RedisKey?, RedisValue[], string, ILockReleaseObserver?, TimeSpan?, CancellationToken)"/>,
    /// for an operation that began at <paramref name="started"/> (a <see cref="Stopwatch"/> timestamp) with another
    /// call: <see cref="RedisDriverOptions.OperationTimeout"/> bounds both together.
    /// </summary>
    public ValueTask<RedisResult> EvaluateAsync(
        string script, RedisKey key, RedisKey? companion, RedisValue[] args, long started, string operation, ILockReleaseObserver? released, TimeSpan? giveBackFor, CancellationToken cancellationToken) =>
        EvaluateAsync(script, key, companion, args, started, operation, released, giveBackFor, CommandFlags.None, cancellationToken);

    /// <summary>The script sent with <paramref name="flags"/>: <see cref="OnMaster"/> for one that only reads.</summary>
    private async ValueTask<RedisResult> EvaluateAsync(
        string script, RedisKey key, RedisKey? companion, RedisValue[] args, long started, string operation, ILockReleaseObserver? released, TimeSpan? giveBackFor, CommandFlags flags, CancellationToken cancellationToken)
    {
        var database = await GetDatabaseAsync(operation, cancellationToken).ConfigureAwait(false);
        try
        {
            if (companion is { } second)
            {
                try
                {
                    return await SendAsync(database, script, [key, second], args, started, operation, released, giveBackFor, flags, cancellationToken).ConfigureAwait(false);
                }
                catch (RedisServerException ex) when (ex.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal))
                {
                    // Falls through to the script with one key.
                    released = null;
                }
            }

            return await SendAsync(database, script, [key], args, started, operation, released, giveBackFor, flags, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            if (ex is RedisServerException { Message: var message } && message.StartsWith("READONLY", StringComparison.Ordinal))
            {
                Relearn(database.Multiplexer);
            }

            throw Failure(ex, operation);
        }
    }

    /// <summary>
    /// Sends a script by its SHA-1, and with its text if the node does not know it, within the operation's time left;
    /// tells <paramref name="released"/> once the first is queued (the client queues a command before it returns its task).
    /// A give-back that fails without an answer saying it ran, or whose caller stops waiting first, is seen through (see
    /// <see cref="RedisGiveBacks"/>).
    /// </summary>
    private async Task<RedisResult> SendAsync(
        IDatabase database, string script, RedisKey[] keys, RedisValue[] args, long started, string operation, ILockReleaseObserver? released, TimeSpan? giveBackFor, CommandFlags flags, CancellationToken cancellationToken)
    {
        var left = TimeLeft(started, operation);
        var pending = database.ScriptEvaluateAsync(ScriptHashes.GetValue(script, ScriptHash), keys, args, flags);
        try
        {
            try
            {
                released?.ReleaseSent();
                return await pending.WaitAsync(left, cancellationToken).ConfigureAwait(false);
            }
            catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
            {
                left = TimeLeft(started, operation);
                pending = database.ScriptEvaluateAsync(script, keys, args, flags);
                return await pending.WaitAsync(left, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (giveBackFor is { } period
            && (ex is RedisConnectionException or TimeoutException or OperationCanceledException or RedisDriverException || RefusedForNow(ex)))
        {
            _giveBacks.Add(database, pending, script, keys, args, period);
            throw;
        }
    }

    /// <summary>
    /// Whether <paramref name="ex"/> is an answer by which a node refused a script having run nothing, for a while, and
    /// that the client does not follow itself (it follows <c>MOVED</c> and <c>ASK</c> to a node it can reach):
    /// <c>READONLY</c> (the node is a replica: a master just demoted by a failover, until the client learns which node
    /// was promoted), <c>LOADING</c> (a node restarted, reading its data), <c>MASTERDOWN</c> (a replica that serves no
    /// stale data), <c>CLUSTERDOWN</c> (a Cluster failing over), <c>NOREPLICAS</c> (too few replicas for a write), <c>BUSY</c> (a script that runs long), and
    /// <c>MOVED</c> or <c>ASK</c> the client could not follow.
    /// </summary>
    private static bool RefusedForNow(Exception ex) =>
        ex is RedisServerException { Message: var message } && RefusedForNowAnswers.Any(answer => message.StartsWith(answer, StringComparison.Ordinal));

    /// <summary>
    /// Asks the client to learn the servers' roles again, once a node it sends writes to answered <c>READONLY</c>: a
    /// master just demoted by a failover. The client learns of a promotion by itself from Sentinel's
    /// <c>+switch-master</c>, but otherwise only every <c>configCheckSeconds</c> (60 s by default), and until then sends
    /// every write to the replica. At most once per <see cref="RedisGiveBacks.Interval"/>.
    /// </summary>
    private void Relearn(IConnectionMultiplexer connection)
    {
        var last = Volatile.Read(ref _relearnedAt);
        if (_timeProvider.GetElapsedTime(last) < RedisGiveBacks.Interval
            || Interlocked.CompareExchange(ref _relearnedAt, _timeProvider.GetTimestamp(), last) != last)
        {
            return;
        }

        RelearningRoles(EndPoints);
        _ = connection.ConfigureAsync().ContinueWith(
            static task => _ = task.Exception,
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <summary>
    /// What is left of <see cref="RedisDriverOptions.OperationTimeout"/> for an operation started at
    /// <paramref name="started"/> (the wait for a connection included); when nothing is, the operation fails before it
    /// is sent (again), so that it can never run unobserved after its caller was told it timed out.
    /// </summary>
    private TimeSpan TimeLeft(long started, string operation)
    {
        var left = _options.OperationTimeout - Stopwatch.GetElapsedTime(started);
        if (left > TimeSpan.Zero)
        {
            return left;
        }

        var endPoints = EndPoints;
        var exception = new RedisDriverException(
            $"The {operation} was not sent to Redis at {endPoints}: RedisDriverOptions.OperationTimeout " +
            $"({_options.OperationTimeout.TotalMilliseconds:0} ms) had run out before it could be sent.",
            endPoints,
            innerException: null);
        OperationFailed(operation, endPoints, exception);
        throw exception;
    }

    /// <summary>
    /// Reads the hash at <paramref name="key"/> with one <c>HGETALL</c>, for an operation that began at
    /// <paramref name="started"/> (a <see cref="Stopwatch"/> timestamp): its fields (none when there is no key), or
    /// <see langword="null"/> when the key holds another type.
    /// </summary>
    public async ValueTask<HashEntry[]?> ReadHashAsync(RedisKey key, long started, string operation, CancellationToken cancellationToken)
    {
        var database = await GetDatabaseAsync(operation, cancellationToken).ConfigureAwait(false);
        var left = TimeLeft(started, operation);
        try
        {
            return await database.HashGetAllAsync(key, OnMaster).WaitAsync(left, cancellationToken).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("WRONGTYPE", StringComparison.Ordinal))
        {
            return null;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw Failure(ex, operation, key);
        }
    }

    /// <summary>Deletes <paramref name="key"/> (a single command: one round trip).</summary>
    public async ValueTask DeleteAsync(RedisKey key, string operation, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var database = await GetDatabaseAsync(operation, cancellationToken).ConfigureAwait(false);
        var left = TimeLeft(started, operation);
        try
        {
            await database.KeyDeleteAsync(key).WaitAsync(left, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw Failure(ex, operation, key);
        }
    }

    /// <summary>Connects (and so subscribes to lock releases) if no operation has yet; never throws.</summary>
    public void EnsureStarted()
    {
        if (Volatile.Read(ref _connecting) is { IsCompleted: true, IsFaulted: false } || Volatile.Read(ref _disposed))
        {
            return;
        }

        _ = Connect().ContinueWith(
            static task => _ = task.Exception,
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <summary>
    /// Lists the keys matching <paramref name="pattern"/> with <c>SCAN</c> on every primary (see <see cref="Primaries"/>):
    /// the one server, Sentinel's master, or each master of a Cluster. A server that cannot be read fails the listing
    /// with a <see cref="RedisDriverException"/>.
    /// </summary>
    public async IAsyncEnumerable<string> ScanAsync(string pattern, string operation, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var database = await GetDatabaseAsync(operation, cancellationToken).ConfigureAwait(false);
        foreach (var server in Primaries(database.Multiplexer))
        {
            await using var keys = server.KeysAsync(database.Database, pattern, pageSize: 500).GetAsyncEnumerator(cancellationToken);
            while (true)
            {
                try
                {
                    if (!await keys.MoveNextAsync().ConfigureAwait(false))
                    {
                        break;
                    }
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException or AggregateException)
                {
                    throw Failure(ex is AggregateException { InnerException: { } inner } ? inner : ex, operation);
                }

                yield return keys.Current.ToString();
            }
        }
    }

    /// <summary>
    /// The servers to list keys on: every one the client knows that is not a replica, less a master that cannot be
    /// reached and was replaced: under Sentinel, one beside a reachable master (the one promoted); on a Cluster, one that
    /// a reachable node's view of the Cluster no longer holds as a master serving slots (failed over to its replica).
    /// The client keeps a killed master as a master until it comes back; listing on it would fail every time.
    /// </summary>
    private static IEnumerable<IServer> Primaries(IConnectionMultiplexer connection)
    {
        var masters = connection.GetServers().Where(server => !server.IsReplica).ToList();
        var views = masters.Where(server => server.IsConnected && server.ServerType == ServerType.Cluster)
            .Select(server => server.ClusterConfiguration).OfType<ClusterConfiguration>().ToList();
        if (views.Count == 0)
        {
            return masters.Exists(server => server.IsConnected) ? masters.Where(server => server.IsConnected) : masters;
        }

        return masters.Where(server =>
            server.IsConnected || !views.Exists(view => view[server.EndPoint] is not { IsReplica: false, Slots.Count: > 0 }));
    }

    /// <summary>
    /// Waits (Redis <c>WAIT</c>, on the connection that wrote <paramref name="key"/>) until <paramref name="replicas"/>
    /// replicas of its node have acknowledged every write sent before, for at most
    /// <see cref="RedisDriverOptions.OperationTimeout"/>; fewer acknowledgements fail with
    /// <see cref="RedisDriverException"/> (the write is on the master, but not yet safe from its loss).
    /// </summary>
    public async ValueTask WaitForReplicasAsync(RedisKey key, int replicas, string operation, CancellationToken cancellationToken)
    {
        var database = await GetDatabaseAsync(operation, cancellationToken).ConfigureAwait(false);
        var timeout = (long)_options.OperationTimeout.TotalMilliseconds;
        long acknowledged;
        try
        {
            var endPoint = await database.IdentifyEndpointAsync(key).ConfigureAwait(false);
            var server = database.Multiplexer.GetServer(endPoint!);
            acknowledged = (long)await server.ExecuteAsync("WAIT", replicas, timeout)
                .WaitAsync(_options.OperationTimeout * 2, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw Failure(ex, operation);
        }

        if (acknowledged < replicas)
        {
            var endPoints = EndPoints;
            throw new RedisDriverException(
                $"The {operation} is on the Redis master at {endPoints}, but only {acknowledged} of the {replicas} replicas " +
                $"required by RedisDriverOptions.WaitForReplicas acknowledged it within {timeout} ms; a failover now could lose it.",
                endPoints,
                innerException: null);
        }
    }

    /// <summary>Sends a <c>PING</c> on the driver's connection and returns the round-trip time.</summary>
    public async ValueTask<TimeSpan> PingAsync(CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var database = await GetDatabaseAsync("ping", cancellationToken).ConfigureAwait(false);
        var left = TimeLeft(started, "ping");
        try
        {
            return await database.PingAsync(OnMaster).WaitAsync(left, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw Failure(ex, "ping");
        }
    }

    /// <summary>
    /// Reads a server's <c>INFO memory</c> section. No keys, no arguments; returns the section's text, whose
    /// <c>maxmemory_policy:</c> line names the eviction policy. Sent as a script because the client refuses <c>INFO</c>
    /// and <c>CONFIG</c> themselves on a connection without <c>allowAdmin</c> (StackExchange.Redis 3 even when sent by
    /// name), and <c>INFO</c>, unlike <c>CONFIG</c>, is what managed Redis services leave open.
    /// </summary>
    private const string MemoryInfoScript = "return redis.call('INFO', 'memory')";

    /// <summary>
    /// The primaries (see <see cref="Primaries"/>) whose <c>maxmemory-policy</c> evicts keys that have no expiry
    /// (<c>allkeys-*</c>) under a memory limit (<c>maxmemory</c> above 0; without one nothing is evicted), each as
    /// <c>endpoint policy</c>. A server that refuses to tell (a command renamed or
    /// forbidden), fails or does not answer within <see cref="RedisDriverOptions.OperationTimeout"/> is passed over: its
    /// policy is not known, and that is no failure.
    /// </summary>
    public async ValueTask<IReadOnlyList<string>> EvictingPrimariesAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _connection) is not { } connection)
        {
            return [];
        }

        var policies = await Task.WhenAll(Primaries(connection).Where(server => server.IsConnected).Select(async server =>
        {
            try
            {
                var info = (string?)await server.ExecuteAsync("EVAL", MemoryInfoScript, 0)
                    .WaitAsync(_options.OperationTimeout, cancellationToken).ConfigureAwait(false);
                var lines = info?.Split('\n').Select(line => line.Trim()).ToArray() ?? [];
                string? Field(string name) => lines.FirstOrDefault(line => line.StartsWith(name + ":", StringComparison.Ordinal))?[(name.Length + 1)..];
                var policy = Field("maxmemory_policy");
                var capped = long.TryParse(Field("maxmemory"), NumberStyles.None, CultureInfo.InvariantCulture, out var limit) && limit > 0;
                return capped && policy is not null && policy.StartsWith("allkeys-", StringComparison.Ordinal) ? $"{FormatEndPoint(server.EndPoint)} {policy}" : null;
            }
            catch (Exception ex) when (ex is RedisException or RedisCommandException or TimeoutException)
            {
                return null;
            }
        })).ConfigureAwait(false);
        return [.. policies.OfType<string>()];
    }

    /// <summary>The servers the connection knows of that are not connected now (a replica, a Cluster node), and how many it knows.</summary>
    public (IReadOnlyList<string> Disconnected, int Known) ServerStates()
    {
        var connection = Volatile.Read(ref _connection);
        if (connection is null)
        {
            return ([], 0);
        }

        var endPoints = connection.GetEndPoints();
        var disconnected = endPoints.Where(endPoint => !connection.GetServer(endPoint).IsConnected).Select(FormatEndPoint).ToList();
        return (disconnected, endPoints.Length);
    }

    public void Dispose()
    {
        IConnectionMultiplexer? connection;
        bool owned;
        lock (_gate)
        {
            _disposed = true;
            connection = _connection;
            owned = _owned;
            _connection = null;
        }

        _giveBacks.Dispose();
        if (connection is null)
        {
            return;
        }

        Detach(connection);
        if (owned)
        {
            connection.Dispose();
        }
    }

    /// <summary>
    /// The options the driver connects with: a copy of <see cref="RedisDriverOptions.ConfigurationOptions"/> (which
    /// wins, as in <c>RedisCacheOptions</c>) or <see cref="RedisDriverOptions.Configuration"/> parsed; null if neither.
    /// </summary>
    internal static ConfigurationOptions? ConfigurationOf(RedisDriverOptions options) =>
        options.ConfigurationOptions?.Clone()
        ?? (string.IsNullOrWhiteSpace(options.Configuration) ? null : ConfigurationOptions.Parse(options.Configuration));

    private async ValueTask<IDatabase> GetDatabaseAsync(string operation, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var connecting = Connect();
        IConnectionMultiplexer connection;
        if (connecting.IsCompletedSuccessfully)
        {
            connection = connecting.Result;
        }
        else
        {
            try
            {
                connection = await connecting.WaitAsync(_options.OperationTimeout, cancellationToken).ConfigureAwait(false);
            }
            catch (RedisDriverException ex)
            {
                OperationFailed(operation, EndPoints, ex);
                throw;
            }
            catch (TimeoutException ex)
            {
                throw Failure(ex, operation);
            }
        }

        return connection.GetDatabase();
    }

    /// <summary>The connection attempt in progress or done; a failed attempt is replaced by a new one.</summary>
    private Task<IConnectionMultiplexer> Connect()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_connecting is null || _connecting.IsFaulted || _connecting.IsCanceled)
            {
                _connecting = ConnectCoreAsync();
            }

            return _connecting;
        }
    }

    private async Task<IConnectionMultiplexer> ConnectCoreAsync()
    {
        await Task.Yield();
        IConnectionMultiplexer connection;
        var owned = false;
        try
        {
            if (_options.ConnectionMultiplexerFactory is { } factory)
            {
                connection = await factory().ConfigureAwait(false)
                    ?? throw new InvalidOperationException("RedisDriverOptions.ConnectionMultiplexerFactory returned null.");
                Volatile.Write(ref _endPoints, FormatEndPoints(connection.GetEndPoints()));
                var prefix = ConfigurationOptions.Parse(connection.Configuration, ignoreUnknown: true).ChannelPrefix;
                Volatile.Write(ref _publishedReleaseChannel, PrefixedChannel(prefix, _releaseChannel.ToString()));
            }
            else
            {
                var configuration = ConfigurationOf(_options)!;
                configuration.AbortOnConnectFail = false;

                // Keys are session ids: the client's exception messages must not carry them.
                configuration.IncludeDetailInExceptions = false;

                // While Redis cannot be reached, an operation fails at once instead of waiting in the client's backlog
                // for the whole timeout: the request gets its clear error, and the driver retries on the next one.
                configuration.BacklogPolicy = BacklogPolicy.FailFast;

                // The driver bounds every wait by OperationTimeout itself (WAIT for replicas by twice that): the client's
                // own timeout (asyncTimeout, 5 s unless the configuration says more) must not cut a longer one short.
                configuration.AsyncTimeout = (int)Math.Max(configuration.AsyncTimeout, Math.Min(int.MaxValue, _options.OperationTimeout.TotalMilliseconds * 2));

                // Socket reads on the .NET thread pool rather than the client's dedicated threads: 2 to 4 times the
                // throughput on a 2-core machine (docs/drivers.md). An app's own SocketManager is kept.
                configuration.SocketManager ??= SocketManager.ThreadPool;
                connection = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
                owned = true;
            }
        }
        catch (Exception ex)
        {
            ConnectFailed(EndPoints, ex);
            throw new RedisDriverException(
                $"Connecting to Redis at {EndPoints} failed; the next operation tries again. {ex.Message}", EndPoints, ex);
        }

        connection.ConnectionFailed += OnConnectionFailed;
        connection.ConnectionRestored += OnConnectionRestored;
        lock (_gate)
        {
            if (_disposed)
            {
                Detach(connection);
                if (owned)
                {
                    connection.Dispose();
                }

                throw new ObjectDisposedException(nameof(RedisConnection));
            }

            _connection = connection;
            _owned = owned;
        }

        Connected(EndPoints, connection.IsConnected);

        // Subscribed once: the client keeps the subscription and renews it after every reconnect, even when this
        // first SUBSCRIBE fails because Redis is down.
        _ = SubscribeAsync(connection);
        return connection;
    }

    private async Task SubscribeAsync(IConnectionMultiplexer connection)
    {
        try
        {
            await connection.GetSubscriber().SubscribeAsync(_releaseChannel, _releaseHandler).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            SubscribeFailed(EndPoints, ex);
        }
    }

    /// <summary>
    /// Takes this driver's handlers off <paramref name="connection"/>: its events and its release subscription (only
    /// this handler: the application may subscribe to the same channel).
    /// </summary>
    private void Detach(IConnectionMultiplexer connection)
    {
        connection.ConnectionFailed -= OnConnectionFailed;
        connection.ConnectionRestored -= OnConnectionRestored;
        try
        {
            connection.GetSubscriber().Unsubscribe(_releaseChannel, _releaseHandler, CommandFlags.FireAndForget);
        }
        catch (ObjectDisposedException)
        {
            // The application disposed its multiplexer first, as a container does at shutdown (it disposes singletons
            // in the reverse order it made them, and the factory resolves the multiplexer after the driver was made).
        }
    }

    /// <summary>
    /// The driver's exception for a failed operation, logged. <paramref name="key"/> is the operation's own key when it
    /// is a plain command (scripts name none), which the failure must not carry (see <see cref="Redacted"/>).
    /// </summary>
    private RedisDriverException Failure(Exception ex, string operation, RedisKey? key = null)
    {
        ex = Redacted(ex, key);
        var endPoints = EndPoints;
        OperationFailed(operation, endPoints, ex);
        var message = ex switch
        {
            RedisConnectionException { FailureType: ConnectionFailureType.UnableToResolvePhysicalConnection } =>
                $"Redis at {endPoints} cannot be reached; the {operation} was not sent. " +
                "The driver keeps reconnecting; operations succeed again once Redis is back.",
            RedisConnectionException connection =>
                $"The connection to Redis at {endPoints} failed ({connection.FailureType}) during the {operation}; " +
                "its outcome is unknown. The driver keeps reconnecting; operations succeed again once Redis is back.",
            TimeoutException =>
                $"Redis at {endPoints} did not answer the {operation} within {_options.OperationTimeout.TotalMilliseconds:0} ms " +
                "(RedisDriverOptions.OperationTimeout); its outcome is unknown.",
            RedisServerException server =>
                $"Redis at {endPoints} refused the {operation}: {FirstLine(server.Message)}",
            _ => $"Redis at {endPoints} failed the {operation}: {FirstLine(ex.Message)}",
        };
        return new RedisDriverException(message, endPoints, ex);
    }

    /// <summary>
    /// <paramref name="ex"/>, or a copy of it (without the client's <see cref="Exception.Data"/>) whose message names no
    /// session id and not <paramref name="key"/>. The client describes a typed command by its key: with an
    /// application's multiplexer (details in exceptions, the client's default) in the message of its own failure and of
    /// the failure of every command queued on the connection behind it (<c>next: HGETALL &lt;key&gt;</c>, a script's
    /// timeout among them), and always in a timeout's <c>Data</c>. A session's keys hold its id, a cache entry's key the
    /// application's cache key; neither may reach a message or a log.
    /// </summary>
    private static Exception Redacted(Exception ex, RedisKey? key)
    {
        var pattern = SessionKeyId();
        var name = key is { } k ? (string?)k : null;
        bool Names(string text) => pattern.IsMatch(text) || (!string.IsNullOrEmpty(name) && text.Contains(name, StringComparison.Ordinal));
        if (!Names(ex.Message) && !ex.Data.Values.OfType<string>().Any(Names))
        {
            return ex;
        }

        var message = pattern.Replace(ex.Message, "(id)");
        return Copy(ex, string.IsNullOrEmpty(name) ? message : message.Replace(name, "(the key)", StringComparison.Ordinal));
    }

    /// <summary>A copy of a client exception with <paramref name="message"/>; any other exception as it is.</summary>
    private static Exception Copy(Exception ex, string message) =>
        ex switch
        {
            RedisConnectionException connection => new RedisConnectionException(connection.FailureType, message, connection.InnerException, connection.CommandStatus),
            RedisTimeoutException timeout => new RedisTimeoutException(message, timeout.Commandstatus),
            RedisServerException => new RedisServerException(message),
            RedisException => new RedisException(message, ex.InnerException),
            _ => ex,
        };

    /// <summary>The session id in a session's keys (<c>&lt;InstanceName&gt;s:{&lt;id&gt;}</c>, <c>w:{&lt;id&gt;}</c>).</summary>
    [GeneratedRegex(@"(?<=[sw]:\{)[^}]*(?=\})", RegexOptions.CultureInvariant)]
    private static partial Regex SessionKeyId();

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e) =>
        ConnectionFailed(e.EndPoint, e.ConnectionType, e.FailureType, e.Exception);

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e) =>
        ConnectionRestored(e.EndPoint, e.ConnectionType);

    private static string PrefixedChannel(RedisChannel? prefix, string channel) => (prefix is { } p ? (string?)p : null) + channel;

    private static string FirstLine(string message)
    {
        var end = message.AsSpan().IndexOfAny('\r', '\n');
        return end < 0 ? message : message[..end];
    }

    private static string FormatEndPoints(IEnumerable<EndPoint> endPoints)
    {
        var formatted = string.Join(", ", endPoints.Select(FormatEndPoint));
        return formatted.Length == 0 ? "(no endpoint)" : formatted;
    }

    private static string FormatEndPoint(EndPoint? endPoint) => endPoint switch
    {
        DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        null => "(unknown endpoint)",
        _ => endPoint.ToString() ?? "(unknown endpoint)",
    };

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Connected to Redis at {EndPoints} (connected now: {IsConnected}).")]
    private partial void Connected(string endPoints, bool isConnected);

    [LoggerMessage(EventId = 301, Level = LogLevel.Error, Message = "Connecting to Redis at {EndPoints} failed; the next operation tries again.")]
    private partial void ConnectFailed(string endPoints, Exception exception);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "The {ConnectionType} connection to Redis at {EndPoint} failed ({FailureType}); reconnecting.")]
    private partial void ConnectionFailed(EndPoint? endPoint, ConnectionType connectionType, ConnectionFailureType failureType, Exception? exception);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "The {ConnectionType} connection to Redis at {EndPoint} is restored.")]
    private partial void ConnectionRestored(EndPoint? endPoint, ConnectionType connectionType);

    [LoggerMessage(EventId = 304, Level = LogLevel.Debug, Message = "The {Operation} failed: Redis at {EndPoints} is unavailable or refused it.")]
    private partial void OperationFailed(string operation, string endPoints, Exception exception);

    [LoggerMessage(EventId = 305, Level = LogLevel.Warning, Message = "Subscribing to lock releases on Redis at {EndPoints} failed; it is retried on reconnect, and lock waiters fall back to their bounded wait.")]
    private partial void SubscribeFailed(string endPoints, Exception exception);

    [LoggerMessage(EventId = 306, Level = LogLevel.Warning, Message = "Redis at {EndPoints} answered READONLY: a master was demoted by a failover; the client learns the servers' roles again.")]
    private partial void RelearningRoles(string endPoints);
}
