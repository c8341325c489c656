using System.Diagnostics;
using Asm.Testing.Redis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary><c>AddHealthChecks().AddAsmSessionStorage()</c> on Redis: a PING on the driver's own connection.</summary>
public sealed class RedisHealthCheckTests : IAsyncLifetime
{
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(30);
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
            options.OperationTimeout = TimeSpan.FromSeconds(30);
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
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"The failing check took {watch.Elapsed}: it waited for the 30 s OperationTimeout.");
        Assert.Contains(_server.EndPoint, down.Description, StringComparison.Ordinal);

        await _server.StartAsync();
        watch.Restart();
        while ((await CheckAsync(health)).Status != HealthStatus.Healthy)
        {
            Assert.True(watch.Elapsed < RecoveryTimeout, "The check did not turn healthy again after Redis came back.");
            await Task.Delay(50);
        }
    }

    private static async Task<HealthReportEntry> CheckAsync(HealthCheckService health) =>
        (await health.CheckHealthAsync()).Entries[AsmStorageHealthChecksBuilderExtensions.DefaultName];
}
