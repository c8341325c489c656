using System.Diagnostics;
using Asm.Testing.Redis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using static Asm.Testing.Health.StorageHealth;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// <c>AddHealthChecks().AddAsmSessionStorage()</c> on Redis: a PING on the driver's own connection, and whether every
/// server the connection knows is connected.
/// </summary>
public sealed class RedisHealthCheckTests : IAsyncLifetime
{
    private readonly RedisServer _server = new();

    public Task InitializeAsync() => _server.StartAsync();

    public Task DisposeAsync()
    {
        _server.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Redis_UpThenDownThenBack_HealthyUnhealthyHealthy()
    {
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(options =>
        {
            options.Configuration = _server.EndPoint;
            options.OperationTimeout = TimeSpan.FromSeconds(60);
        });
        services.AddHealthChecks().AddAsmSessionStorage();
        await using var provider = services.BuildServiceProvider();
        var health = provider.GetRequiredService<HealthCheckService>();

        var up = await CheckAsync(health);
        Assert.Equal(HealthStatus.Healthy, up.Status);
        Assert.Contains($"Redis at {_server.EndPoint} answered PING", up.Description, StringComparison.Ordinal);
        Assert.True((double)up.Data["latency_ms"] >= 0);

        _server.Stop();
        var watch = Stopwatch.StartNew();
        var down = await CheckAsync(health);
        Assert.Equal(HealthStatus.Unhealthy, down.Status);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"The failing check took {watch.Elapsed}: it waited for the 60 s OperationTimeout.");
        Assert.Contains(_server.EndPoint, down.Description, StringComparison.Ordinal);

        await _server.StartAsync();
        await WaitForStatusAsync(health, HealthStatus.Healthy, "after Redis came back");
    }

    [Fact]
    public async Task RedisCluster_ReplicaKilledThenRestarted_DegradedNamingItThenHealthy()
    {
        using var cluster = new RedisCluster { ReplicasPerMaster = 1 };
        await cluster.StartAsync();
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(cluster.Configuration);
        services.AddHealthChecks().AddAsmSessionStorage();
        await using var provider = services.BuildServiceProvider();
        var health = provider.GetRequiredService<HealthCheckService>();
        await WaitForStatusAsync(health, HealthStatus.Healthy, "with every node up");

        var replica = await cluster.ReplicaOfAsync((await cluster.MastersAsync())[0]);
        replica.Stop();
        var degraded = await WaitForStatusAsync(health, HealthStatus.Degraded, "after a replica was killed");
        Assert.Contains("but 1 of its 6 servers are disconnected", degraded.Description, StringComparison.Ordinal);
        Assert.Equal(replica.EndPoint, degraded.Data["disconnected"]);

        await replica.StartAsync();
        await WaitForStatusAsync(health, HealthStatus.Healthy, "after the replica came back");
    }

    [Fact]
    public async Task Redis_MaxMemoryPolicyAllKeysUnderALimit_DegradedNamingIt_HealthyWithoutALimitOrWithAVolatilePolicy()
    {
        await using var provider = Build(_server.EndPoint);
        var health = provider.GetRequiredService<HealthCheckService>();
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(health)).Status);
        try
        {
            // Without a memory limit (maxmemory 0) Redis evicts nothing, whatever the policy.
            await _server.ExecuteAsync("CONFIG", "SET", "maxmemory-policy", "allkeys-lru");
            var unlimited = await CheckAsync(health);
            Assert.Equal(HealthStatus.Healthy, unlimited.Status);

            // Shared with a cache that lets Redis evict any key under a limit: the user indexes and end checks have no expiry.
            await _server.ExecuteAsync("CONFIG", "SET", "maxmemory", "1gb");
            var evicting = await CheckAsync(health);
            Assert.Equal(HealthStatus.Degraded, evicting.Status);
            Assert.Contains($"maxmemory-policy evicts keys without an expiry ({_server.EndPoint} allkeys-lru)", evicting.Description, StringComparison.Ordinal);
            Assert.Equal($"{_server.EndPoint} allkeys-lru", evicting.Data["maxmemory_policy"]);

            await _server.ExecuteAsync("CONFIG", "SET", "maxmemory-policy", "volatile-lru");
            Assert.Equal(HealthStatus.Healthy, (await CheckAsync(health)).Status);
        }
        finally
        {
            await _server.ExecuteAsync("CONFIG", "SET", "maxmemory-policy", "noeviction");
            await _server.ExecuteAsync("CONFIG", "SET", "maxmemory", "0");
        }
    }

    [Fact]
    public async Task Redis_PolicyNotReadable_HealthyWithoutJudgingIt()
    {
        // A Redis that forbids the commands which tell the policy (INFO and CONFIG renamed away): its policy is not
        // known, and that is no failure.
        using var managed = new RedisServer { ExtraArguments = ["--maxmemory-policy", "allkeys-lru", "--rename-command", "INFO", "", "--rename-command", "CONFIG", ""] };
        await managed.StartAsync();
        await using var provider = Build(managed.EndPoint);

        var entry = await CheckAsync(provider.GetRequiredService<HealthCheckService>());

        Assert.Equal(HealthStatus.Healthy, entry.Status);
        Assert.False(entry.Data.ContainsKey("maxmemory_policy"));
    }

    private static ServiceProvider Build(string endPoint)
    {
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(endPoint);
        services.AddHealthChecks().AddAsmSessionStorage();
        return services.BuildServiceProvider();
    }
}
