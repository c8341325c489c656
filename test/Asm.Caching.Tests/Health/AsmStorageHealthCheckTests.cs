using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Asm.Testing.Cleanup;

namespace Asm.Caching.Tests.Health;

/// <summary><c>AddHealthChecks().AddAsmSessionStorage()</c> on the drivers that live on this machine.</summary>
public sealed class AsmStorageHealthCheckTests : IDisposable
{
    private readonly string _root = TestDirectories.Create("asm-health-tests-");

    private string StoreDirectory => Path.Combine(_root, "store");

    [Fact]
    public async Task FileSystem_DirectoryWritableThenBlockedThenBack_HealthyUnhealthyHealthy()
    {
        await using var provider = Build(builder => builder.UseFileSystemDriver(StoreDirectory));
        var health = provider.GetRequiredService<HealthCheckService>();

        var up = await CheckAsync(health);
        Assert.Equal(HealthStatus.Healthy, up.Status);
        Assert.Contains(StoreDirectory, up.Description, StringComparison.Ordinal);

        // A file where the directory was: it can be neither used nor created again.
        Directory.Delete(StoreDirectory, recursive: true);
        await File.WriteAllBytesAsync(StoreDirectory, [1]);
        var down = await CheckAsync(health);
        Assert.Equal(HealthStatus.Unhealthy, down.Status);
        Assert.Contains("not writable", down.Description, StringComparison.Ordinal);
        Assert.IsAssignableFrom<IOException>(down.Exception);

        File.Delete(StoreDirectory);
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(health)).Status);

        // The probe leaves nothing behind.
        Assert.Empty(Directory.EnumerateFiles(StoreDirectory));
    }

    [Fact]
    public async Task FileSystem_DirectoryRemovedWhileRunning_ProbeCreatesItAgainAndSessionsWork()
    {
        await using var provider = Build(builder => builder.UseFileSystemDriver(StoreDirectory));
        var health = provider.GetRequiredService<HealthCheckService>();
        var cache = provider.GetRequiredService<IDistributedCache>();
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(health)).Status);

        // A cleaner of temporary folders removes it; nothing is written until the probe runs (a readiness probe
        // that stayed Unhealthy would keep the instance out of traffic, and so out of the writes that heal it).
        Directory.Delete(StoreDirectory, recursive: true);

        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(health)).Status);
        Assert.True(Directory.Exists(StoreDirectory));
        await cache.SetAsync("key", [7], new DistributedCacheEntryOptions());
        Assert.Equal([7], await cache.GetAsync("key"));
    }

    [Fact]
    public async Task FileSystem_FailureStatusGiven_ReportsItWhenTheDirectoryIsNotWritable()
    {
        await using var provider = Build(
            builder => builder.UseFileSystemDriver(StoreDirectory),
            failureStatus: HealthStatus.Degraded);
        var health = provider.GetRequiredService<HealthCheckService>();
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(health)).Status);
        Directory.Delete(StoreDirectory, recursive: true);
        await File.WriteAllBytesAsync(StoreDirectory, [1]);

        Assert.Equal(HealthStatus.Degraded, (await CheckAsync(health)).Status);
    }

    [Fact]
    public async Task InMemory_Always_Healthy()
    {
        await using var provider = Build(builder => builder.UseInMemoryDriver());

        var entry = await CheckAsync(provider.GetRequiredService<HealthCheckService>());

        Assert.Equal(HealthStatus.Healthy, entry.Status);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private static ServiceProvider Build(Action<IAsmStorageBuilder> useDriver, HealthStatus? failureStatus = null)
    {
        var services = new ServiceCollection();
        useDriver(services.AddAsmDistributedCache());
        services.AddHealthChecks().AddAsmSessionStorage(failureStatus: failureStatus);
        return services.BuildServiceProvider();
    }

    private static async Task<HealthReportEntry> CheckAsync(HealthCheckService health)
    {
        var report = await health.CheckHealthAsync();
        return report.Entries[AsmStorageHealthChecksBuilderExtensions.DefaultName];
    }
}
