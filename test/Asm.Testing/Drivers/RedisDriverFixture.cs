using Asm.Testing.Redis;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace Asm.Testing.Drivers;

/// <summary>
/// The Redis driver on a real <c>redis-server</c> (single node), started once per test process on a free loopback
/// port and shared by every suite; scopes are key prefixes.
/// </summary>
public sealed class RedisDriverFixture : RedisFixtureBase
{
    private static readonly Lazy<Task<RedisServer>> Shared = new(async () =>
    {
        var server = new RedisServer();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => server.Dispose();
        await server.StartAsync();
        return server;
    });

    private RedisServer? _server;

    public override string Name => "redis";

    public RedisServer Server => _server ?? throw new InvalidOperationException("The fixture is not initialized.");

    protected override string Configuration => Server.EndPoint;

    public override async Task InitializeAsync() => _server = await Shared.Value;

    protected override Task<object?> ExecuteAsync(string key, params object[] args) => Server.ExecuteAsync(args);

    protected override async Task<IEnumerable<string>> KeysAsync(string pattern) =>
        ((object?[])(await Server.ExecuteAsync("KEYS", pattern))!).Select(k => System.Text.Encoding.UTF8.GetString((byte[])k!));
}

/// <summary>The Redis driver on a real 3-master Redis Cluster, started once per test process.</summary>
public sealed class RedisClusterDriverFixture : RedisFixtureBase
{
    private static readonly Lazy<Task<RedisCluster>> Shared = new(async () =>
    {
        var cluster = new RedisCluster();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Dispose();
        await cluster.StartAsync();
        return cluster;
    });

    private RedisCluster? _cluster;

    public override string Name => "redis-cluster";

    public RedisCluster Cluster => _cluster ?? throw new InvalidOperationException("The fixture is not initialized.");

    protected override string Configuration => Cluster.Configuration;

    public override async Task InitializeAsync() => _cluster = await Shared.Value;

    protected override Task<object?> ExecuteAsync(string key, params object[] args) => Cluster.ExecuteOnKeyAsync(key, args);

    protected override async Task<IEnumerable<string>> KeysAsync(string pattern)
    {
        var keys = new List<string>();
        foreach (var node in Cluster.Nodes)
        {
            keys.AddRange(((object?[])(await node.ExecuteAsync("KEYS", pattern))!).Select(k => System.Text.Encoding.UTF8.GetString((byte[])k!)));
        }

        return keys;
    }
}

/// <summary>What the single-node and cluster fixtures share: scopes are key prefixes.</summary>
public abstract class RedisFixtureBase : IDriverFixture, IAsyncLifetime
{
    public abstract string Name { get; }

    public bool IsShared => true;

    protected abstract string Configuration { get; }

    public abstract Task InitializeAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    public void Use(IAsmStorageBuilder builder, string scope) => builder.UseRedisDriver(o =>
    {
        o.Configuration = Configuration;
        o.InstanceName = scope + ":";
    });

    public IReadOnlyList<string> ChildArguments(string scope) => ["--driver", "redis", "--configuration", Configuration, "--instance", scope + ":"];

    public async Task CorruptSessionAsync(string scope, string sessionId)
    {
        var key = $"{scope}:s:{{{sessionId}}}";
        await ExecuteAsync(key, "HSET", key, "fmt", "99");
    }

    public async Task<byte[]> DumpAsync(string scope)
    {
        using var all = new MemoryStream();
        foreach (var key in await KeysAsync(scope + ":*"))
        {
            foreach (var item in (object?[])(await ExecuteAsync(key, "HGETALL", key))!)
            {
                await all.WriteAsync((byte[])item!);
            }
        }

        return all.ToArray();
    }

    protected abstract Task<object?> ExecuteAsync(string key, params object[] args);

    protected abstract Task<IEnumerable<string>> KeysAsync(string pattern);
}
