using System.Diagnostics;
using Asm.Testing.Cleanup;
using Xunit;

namespace Asm.Testing.Redis;

/// <summary>
/// A real Redis Cluster of three masters (no replicas) on free loopback ports, created with
/// <c>redis-cli --cluster create</c>. Usable as an xunit fixture: <see cref="InitializeAsync"/> starts it and waits
/// for <c>cluster_state:ok</c> on every node; disposal kills the nodes.
/// </summary>
public sealed class RedisCluster : IAsyncLifetime, IDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);
    private readonly RedisServer[] _nodes = [new(clusterNode: true), new(clusterNode: true), new(clusterNode: true)];

    /// <summary>The three master nodes.</summary>
    public IReadOnlyList<RedisServer> Nodes => _nodes;

    /// <summary>A StackExchange.Redis configuration string that names every node.</summary>
    public string Configuration => string.Join(",", _nodes.Select(n => n.EndPoint));

    /// <summary>Starts the nodes, joins them into a cluster and waits until every node reports it healthy.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
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
        foreach (var argument in (string[])["--cluster", "create", .. _nodes.Select(n => n.EndPoint), "--cluster-replicas", "0", "--cluster-yes"])
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

        var deadline = DateTime.UtcNow + ReadyTimeout;
        foreach (var node in _nodes)
        {
            while (true)
            {
                var info = await node.ExecuteTextAsync("CLUSTER", "INFO").ConfigureAwait(false) ?? "";
                if (info.Contains("cluster_state:ok", StringComparison.Ordinal))
                {
                    break;
                }

                if (DateTime.UtcNow > deadline)
                {
                    throw new InvalidOperationException($"{node} did not reach cluster_state:ok:{Environment.NewLine}{info}");
                }

                await Task.Delay(50, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Sends one command about <paramref name="key"/> to the node that owns its slot (following <c>MOVED</c>).
    /// </summary>
    public async Task<object?> ExecuteOnKeyAsync(string key, params object[] args)
    {
        ArgumentNullException.ThrowIfNull(key);
        var port = _nodes[0].Port;
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

    /// <summary>The <c>INFO commandstats</c> of all nodes, added up.</summary>
    public async Task<RedisCommandStats> GetCommandStatsAsync()
    {
        var stats = new List<RedisCommandStats>();
        foreach (var node in _nodes)
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
}
