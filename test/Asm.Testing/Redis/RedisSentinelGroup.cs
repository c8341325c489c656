using System.Globalization;
using Xunit;

namespace Asm.Testing.Redis;

/// <summary>
/// A real Redis Sentinel deployment on free loopback ports: one master, one replica and three
/// <c>redis-sentinel</c>s (quorum 2) that watch it with fast timeouts (down after 1 s), so that a killed master is
/// replaced within seconds. Usable as an xunit fixture: <see cref="InitializeAsync"/> starts it and waits until every
/// sentinel knows the replica and the other sentinels (so a failover can be elected); disposal kills every process
/// and deletes their directories.
/// </summary>
public sealed class RedisSentinelGroup : IAsyncLifetime, IDisposable
{
    /// <summary>The name the sentinels monitor the master under.</summary>
    public const string ServiceName = "mymaster";

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);
    private readonly List<RedisServer> _sentinels = [];
    private RedisServer? _replica;

    /// <summary>The master the group starts with.</summary>
    public RedisServer Master { get; } = new();

    /// <summary>The replica the group starts with (promoted when the master dies).</summary>
    public RedisServer Replica => _replica ?? throw new InvalidOperationException("The group is not started.");

    /// <summary>The three sentinels.</summary>
    public IReadOnlyList<RedisServer> Sentinels => _sentinels;

    /// <summary>A StackExchange.Redis configuration string in Sentinel mode: the sentinels and the service name.</summary>
    public string Configuration => string.Join(",", _sentinels.Select(s => s.EndPoint)) + ",serviceName=" + ServiceName;

    /// <summary>Starts the master, the replica and the sentinels, and waits until a failover could be elected.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await Master.StartAsync(cancellationToken).ConfigureAwait(false);
        var masterPort = Master.Port.ToString(CultureInfo.InvariantCulture);
        _replica = new RedisServer { ExtraArguments = ["--replicaof", "127.0.0.1", masterPort] };
        await _replica.StartAsync(cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < 3; i++)
        {
            var sentinel = new RedisServer
            {
                SentinelConfiguration =
                [
                    $"sentinel monitor {ServiceName} 127.0.0.1 {masterPort} 2",
                    $"sentinel down-after-milliseconds {ServiceName} 1000",
                    $"sentinel failover-timeout {ServiceName} 5000",
                    $"sentinel parallel-syncs {ServiceName} 1",
                ],
            };
            _sentinels.Add(sentinel);
            await sentinel.StartAsync(cancellationToken).ConfigureAwait(false);
        }

        await WaitUntilAsync(
            async () =>
            {
                if (await Replica.ExecuteTextAsync("INFO", "replication").ConfigureAwait(false) is not { } info
                    || !info.Contains("master_link_status:up", StringComparison.Ordinal))
                {
                    return false;
                }

                foreach (var sentinel in _sentinels)
                {
                    var master = await MasterStateAsync(sentinel).ConfigureAwait(false);
                    if (master.GetValueOrDefault("num-slaves") != "1" || master.GetValueOrDefault("num-other-sentinels") != "2")
                    {
                        return false;
                    }
                }

                return true;
            },
            "the replica to sync and every sentinel to know the replica and the two other sentinels",
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The port of the master as the first sentinel that answers reports it now.</summary>
    public async Task<int> CurrentMasterPortAsync()
    {
        foreach (var sentinel in _sentinels.Where(s => s.IsRunning))
        {
            var reply = (object?[]?)await sentinel.ExecuteAsync("SENTINEL", "get-master-addr-by-name", ServiceName).ConfigureAwait(false);
            if (reply is [_, var port])
            {
                return int.Parse(RedisServer.AsText(port)!, CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException("No sentinel answered.");
    }

    /// <summary>Waits until every sentinel names <paramref name="server"/> as the master.</summary>
    public Task WaitForMasterAsync(RedisServer server, CancellationToken cancellationToken = default) =>
        WaitUntilAsync(
            async () =>
            {
                foreach (var sentinel in _sentinels)
                {
                    var reply = (object?[]?)await sentinel.ExecuteAsync("SENTINEL", "get-master-addr-by-name", ServiceName).ConfigureAwait(false);
                    if (reply is not [_, var port] || RedisServer.AsText(port) != server.Port.ToString(CultureInfo.InvariantCulture))
                    {
                        return false;
                    }
                }

                return true;
            },
            $"every sentinel to name {server} the master",
            cancellationToken);

    Task IAsyncLifetime.InitializeAsync() => StartAsync();

    Task IAsyncLifetime.DisposeAsync()
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        foreach (var sentinel in _sentinels)
        {
            sentinel.Dispose();
        }

        _replica?.Dispose();
        Master.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"Redis Sentinel {Configuration}";

    private static async Task<Dictionary<string, string>> MasterStateAsync(RedisServer sentinel)
    {
        var reply = (object?[]?)await sentinel.ExecuteAsync("SENTINEL", "MASTER", ServiceName).ConfigureAwait(false) ?? [];
        var state = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < reply.Length; i += 2)
        {
            state[RedisServer.AsText(reply[i]) ?? ""] = RedisServer.AsText(reply[i + 1]) ?? "";
        }

        return state;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + ReadyTimeout;
        while (true)
        {
            try
            {
                if (await condition().ConfigureAwait(false))
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or RedisErrorReplyException)
            {
                // A process still starting.
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"Waited {ReadyTimeout.TotalSeconds} s for {what}.");
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }
}
