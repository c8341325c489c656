using System.Diagnostics;
using System.Globalization;
using Asm.Testing.Cleanup;
using Xunit;

namespace Asm.Testing.Redis;

/// <summary>
/// A real Redis Cluster of three masters, each with <see cref="ReplicasPerMaster"/> replicas, on free loopback ports,
/// created with <c>redis-cli --cluster create</c>. Usable as an xunit fixture: <see cref="InitializeAsync"/> starts it
/// and waits until every node reports it healthy (and every replica has synced); disposal kills the nodes. It also
/// drives what a failover or a resharding does to a real cluster: the topology as the nodes report it, and a slot's
/// migration step by step.
/// </summary>
public sealed class RedisCluster : IAsyncLifetime, IDisposable
{
    private const int MasterCount = 3;
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);
    private RedisServer[] _nodes = [];

    /// <summary>
    /// How many replicas each master gets; 0 (the default, the cheapest cluster) for three masters alone, 1 for the
    /// six nodes a failover needs.
    /// </summary>
    public int ReplicasPerMaster { get; init; }

    /// <summary>
    /// Arguments every node is started with, after the cluster defaults: for example
    /// <c>["--cluster-node-timeout", "1000"]</c> for a failover within seconds.
    /// </summary>
    public IReadOnlyList<string> NodeArguments { get; init; } = [];

    /// <summary>Every node, masters and replicas, in the order <c>redis-cli --cluster create</c> got them.</summary>
    public IReadOnlyList<RedisServer> Nodes => _nodes;

    /// <summary>A StackExchange.Redis configuration string that names every node.</summary>
    public string Configuration => string.Join(",", _nodes.Select(n => n.EndPoint));

    /// <summary>Starts the nodes, joins them into a cluster and waits until every node reports it healthy.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (_nodes.Length > 0)
        {
            throw new InvalidOperationException("The cluster is started already.");
        }

        _nodes = [.. Enumerable.Range(0, MasterCount * (1 + ReplicasPerMaster)).Select(_ => new RedisServer(clusterNode: true) { ExtraArguments = NodeArguments })];
        foreach (var node in _nodes)
        {
            await node.StartAsync(cancellationToken).ConfigureAwait(false);
        }

        var cli = RedisServer.FindExecutable("redis-cli");
        var start = new ProcessStartInfo(cli)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        string[] arguments =
        [
            "--cluster", "create", .. _nodes.Select(n => n.EndPoint),
            "--cluster-replicas", ReplicasPerMaster.ToString(CultureInfo.InvariantCulture), "--cluster-yes",
        ];
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = OwnedProcess.Start(start);
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            timeout.CancelAfter(ReadyTimeout);
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"redis-cli --cluster create failed with code {process.ExitCode}:{Environment.NewLine}{await output.ConfigureAwait(false)}{await error.ConfigureAwait(false)}");
        }

        await WaitUntilAsync(IsReadyAsync, "every node to report cluster_state:ok and the whole topology, and every replica to sync", cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>The hash slot of <paramref name="key"/>, as the cluster computes it.</summary>
    public async Task<int> SlotOfAsync(string key) =>
        (int)(long)(await ExecuteOnAnyAsync("CLUSTER", "KEYSLOT", key).ConfigureAwait(false))!;

    /// <summary>The node that serves <paramref name="slot"/> now, as a running node reports it.</summary>
    public async Task<RedisServer> MasterOfSlotAsync(int slot)
    {
        foreach (var range in (object?[])(await ExecuteOnAnyAsync("CLUSTER", "SLOTS").ConfigureAwait(false))!)
        {
            // [start, end, [host, port, id], replicas...]
            if (range is object?[] { Length: >= 3 } fields && (long)fields[0]! <= slot && slot <= (long)fields[1]!)
            {
                return NodeAt((long)((object?[])fields[2]!)[1]!);
            }
        }

        throw new InvalidOperationException($"No node serves slot {slot}.");
    }

    /// <summary>The running nodes that are masters now.</summary>
    public async Task<IReadOnlyList<RedisServer>> MastersAsync()
    {
        var masters = new List<RedisServer>();
        foreach (var node in _nodes.Where(n => n.IsRunning))
        {
            if (await RoleOfAsync(node).ConfigureAwait(false) == "master")
            {
                masters.Add(node);
            }
        }

        return masters;
    }

    /// <summary>The running replica of <paramref name="master"/>.</summary>
    public async Task<RedisServer> ReplicaOfAsync(RedisServer master)
    {
        EnsureNodes(master);
        foreach (var node in _nodes.Where(n => n.IsRunning))
        {
            // ["slave", host, master port, state, offset]
            if ((object?[])(await node.ExecuteAsync("ROLE").ConfigureAwait(false))! is [var role, _, long port, ..]
                && RedisServer.AsText(role) == "slave" && port == master.Port)
            {
                return node;
            }
        }

        throw new InvalidOperationException($"{master} has no running replica.");
    }

    /// <summary>
    /// Starts moving <paramref name="slot"/> from <paramref name="source"/> to <paramref name="target"/> as
    /// <c>redis-cli --cluster reshard</c> does: the target imports it, the source migrates it. From now on the source
    /// answers <c>ASK</c> for a key of the slot it no longer holds.
    /// </summary>
    public async Task BeginSlotMigrationAsync(int slot, RedisServer source, RedisServer target)
    {
        EnsureNodes(source, target);
        await target.ExecuteAsync("CLUSTER", "SETSLOT", slot, "IMPORTING", await IdOfAsync(source).ConfigureAwait(false)).ConfigureAwait(false);
        await source.ExecuteAsync("CLUSTER", "SETSLOT", slot, "MIGRATING", await IdOfAsync(target).ConfigureAwait(false)).ConfigureAwait(false);
    }

    /// <summary>Moves every key of <paramref name="slot"/> from <paramref name="source"/> to <paramref name="target"/> with <c>MIGRATE</c>; returns how many.</summary>
    public async Task<int> MigrateSlotKeysAsync(int slot, RedisServer source, RedisServer target)
    {
        EnsureNodes(source, target);
        var moved = 0;
        while ((object?[])(await source.ExecuteAsync("CLUSTER", "GETKEYSINSLOT", slot, 100).ConfigureAwait(false))! is { Length: > 0 } keys)
        {
            await source.ExecuteAsync(["MIGRATE", "127.0.0.1", target.Port, "", 0, 5000, "KEYS", .. keys.Select(k => (object)k!)]).ConfigureAwait(false);
            moved += keys.Length;
        }

        return moved;
    }

    /// <summary>
    /// Ends a slot's migration: <paramref name="target"/> owns <paramref name="slot"/>, told to the target, then to
    /// every other master (as <c>redis-cli --cluster reshard</c> does). The old owner answers <c>MOVED</c> from now on.
    /// </summary>
    public async Task EndSlotMigrationAsync(int slot, RedisServer target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var id = await IdOfAsync(target).ConfigureAwait(false);
        await target.ExecuteAsync("CLUSTER", "SETSLOT", slot, "NODE", id).ConfigureAwait(false);
        foreach (var master in (await MastersAsync().ConfigureAwait(false)).Where(n => n != target))
        {
            await master.ExecuteAsync("CLUSTER", "SETSLOT", slot, "NODE", id).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Sends one command about <paramref name="key"/> to the node that owns its slot (following <c>MOVED</c>).
    /// </summary>
    public async Task<object?> ExecuteOnKeyAsync(string key, params object[] args)
    {
        ArgumentNullException.ThrowIfNull(key);
        var port = _nodes.First(n => n.IsRunning).Port;
        for (var hop = 0; ; hop++)
        {
            try
            {
                return await RedisProtocolClient.ExecuteAsync(port, args).ConfigureAwait(false);
            }
            catch (RedisErrorReplyException ex) when (hop < 3 && ex.Reply.StartsWith("MOVED ", StringComparison.Ordinal))
            {
                // MOVED <slot> <host>:<port>
                var target = ex.Reply[(ex.Reply.LastIndexOf(' ') + 1)..];
                port = int.Parse(target[(target.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
    }

    /// <summary>The <c>INFO commandstats</c> of all running nodes, added up.</summary>
    public async Task<RedisCommandStats> GetCommandStatsAsync()
    {
        var stats = new List<RedisCommandStats>();
        foreach (var node in _nodes.Where(n => n.IsRunning))
        {
            stats.Add(await node.GetCommandStatsAsync().ConfigureAwait(false));
        }

        return RedisCommandStats.Sum(stats);
    }

    Task IAsyncLifetime.InitializeAsync() => StartAsync();

    Task IAsyncLifetime.DisposeAsync()
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        foreach (var node in _nodes)
        {
            node.Dispose();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"Redis Cluster {Configuration}";

    private static async Task<string?> RoleOfAsync(RedisServer node) =>
        RedisServer.AsText(((object?[])(await node.ExecuteAsync("ROLE").ConfigureAwait(false))!)[0]);

    private static async Task<string> IdOfAsync(RedisServer node) => (await node.ExecuteTextAsync("CLUSTER", "MYID").ConfigureAwait(false))!;

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition().ConfigureAwait(false))
        {
            if (deadline.Elapsed > ReadyTimeout)
            {
                throw new InvalidOperationException($"Waited {ReadyTimeout.TotalSeconds} s for {what}.");
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Whether every node reports <c>cluster_state:ok</c> and knows every other node as a healthy master or replica
    /// (so that a failover can be elected), and every replica's link to its master is up.
    /// </summary>
    private async Task<bool> IsReadyAsync()
    {
        foreach (var node in _nodes)
        {
            if (await node.ExecuteTextAsync("CLUSTER", "INFO").ConfigureAwait(false) is not { } info
                || !info.Contains("cluster_state:ok", StringComparison.Ordinal))
            {
                return false;
            }

            // <id> <host:port@bus> <flags> <master> ...; flags such as "myself,master", "slave", "fail?", "handshake".
            var flags = (await node.ExecuteTextAsync("CLUSTER", "NODES").ConfigureAwait(false) ?? "")
                .Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(line => line.Split(' ')[2].Split(','))
                .ToList();
            if (flags.Count(f => f.Contains("master")) != MasterCount
                || flags.Count(f => f.Contains("slave")) != MasterCount * ReplicasPerMaster
                || flags.Any(f => f.Any(flag => flag is "fail" or "fail?" or "handshake" or "noaddr")))
            {
                return false;
            }

            if (await RoleOfAsync(node).ConfigureAwait(false) == "slave"
                && !(await node.ExecuteTextAsync("INFO", "replication").ConfigureAwait(false) ?? "").Contains("master_link_status:up", StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private Task<object?> ExecuteOnAnyAsync(params object[] args) => _nodes.First(n => n.IsRunning).ExecuteAsync(args);

    private void EnsureNodes(params RedisServer[] nodes)
    {
        foreach (var node in nodes)
        {
            ArgumentNullException.ThrowIfNull(node);
            if (!_nodes.Contains(node))
            {
                throw new ArgumentException($"{node} is not a node of {this}.", nameof(nodes));
            }
        }
    }

    private RedisServer NodeAt(long port) => _nodes.Single(n => n.Port == port);
}
