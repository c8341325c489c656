using Asm.Testing.Cleanup;
using Asm.Testing.Redis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using static Asm.Testing.Health.StorageHealth;

namespace Asm.SessionAdapter.Tests.Migration;

/// <summary>
/// <c>AddHealthChecks().AddAsmSessionStorage()</c> with <c>MigrateFrom</c>: sessions not moved yet are read from the
/// previous driver, so the check must show that driver down (Degraded, naming it), not only probe the new one.
/// </summary>
public sealed class MigrationHealthCheckTests : IAsyncLifetime
{
    private readonly RedisServer _previous = new();
    private readonly string _root = TestDirectories.Create("asm-migration-health-");

    public Task InitializeAsync() => _previous.StartAsync();

    public Task DisposeAsync()
    {
        _previous.Dispose();
        TestDirectories.Delete(_root);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task PreviousRedisStopped_IsDegradedNamingIt_AndHealthyOnceItIsBack()
    {
        await using var provider = Build(previous => previous.UseRedisDriver(_previous.EndPoint));
        var health = provider.GetRequiredService<HealthCheckService>();
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(health)).Status);

        _previous.Stop();
        var down = await WaitForStatusAsync(health, HealthStatus.Degraded, "after the previous Redis was stopped");
        Assert.Contains("The previous session driver (MigrateFrom)", down.Description, StringComparison.Ordinal);
        Assert.Contains(_previous.EndPoint, down.Description, StringComparison.Ordinal);
        Assert.Equal(_previous.EndPoint, down.Data["previous_endpoints"]);
        Assert.Contains(Path.Combine(_root, "sessions"), down.Description, StringComparison.Ordinal);

        await _previous.StartAsync();
        await WaitForStatusAsync(health, HealthStatus.Healthy, "after the previous Redis came back");
    }

    [Fact]
    public async Task PreviousDirectoryUnusable_IsDegradedNamingIt_AndTheDriverInUseDownIsStillUnhealthy()
    {
        var before = Path.Combine(_root, "before");
        await using var provider = Build(previous => previous.UseFileSystemDriver(before));
        var health = provider.GetRequiredService<HealthCheckService>();
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(health)).Status);

        // A file where the previous directory was: it can be neither read nor created again.
        if (Directory.Exists(before))
        {
            Directory.Delete(before, recursive: true);
        }

        await File.WriteAllBytesAsync(before, [1]);
        var degraded = await CheckAsync(health);
        Assert.Equal(HealthStatus.Degraded, degraded.Status);
        Assert.Contains($"is Unhealthy: The session directory {before} is not writable", degraded.Description, StringComparison.Ordinal);

        // The driver in use down is what decides: requests fail now.
        var sessions = Path.Combine(_root, "sessions");
        Directory.Delete(sessions, recursive: true);
        await File.WriteAllBytesAsync(sessions, [1]);
        var unhealthy = await CheckAsync(health);
        Assert.Equal(HealthStatus.Unhealthy, unhealthy.Status);
        Assert.Contains(sessions, unhealthy.Description, StringComparison.Ordinal);

        File.Delete(sessions);
        File.Delete(before);
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(health)).Status);
    }

    private ServiceProvider Build(Action<IAsmStorageBuilder> previous)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddAsmSession().UseFileSystemDriver(Path.Combine(_root, "sessions")).MigrateFrom(previous);
        services.AddHealthChecks().AddAsmSessionStorage();
        return services.BuildServiceProvider();
    }
}
