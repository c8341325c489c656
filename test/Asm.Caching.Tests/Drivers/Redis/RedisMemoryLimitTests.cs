using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using Microsoft.Extensions.Time.Testing;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// A Redis at its memory limit under <c>noeviction</c> refuses every write that needs memory (<c>OOM</c>). Ending a
/// session must not need any, as on a full disk (see the filesystem driver): a log-out still ends the session.
/// </summary>
public sealed class RedisMemoryLimitTests : IAsyncLifetime
{
    private readonly RedisServer _server = new();
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private RedisTestDrivers _drivers = null!;

    public async Task InitializeAsync()
    {
        await _server.StartAsync();
        _drivers = new RedisTestDrivers(_server.EndPoint);
    }

    public Task DisposeAsync()
    {
        _drivers.Dispose();
        _server.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task DestroyAndExpire_RedisAtItsMemoryLimit_EndTheSessionAndItsLockHoldersCommitIsRefused()
    {
        var driver = _drivers.Create(_clock);
        var destroyed = await SessionSteps.CreateAsync(driver, _clock);
        var expired = await SessionSteps.CreateAsync(driver, _clock);
        var lease = (await SessionSteps.LoadAsync(driver, _clock, destroyed, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
        var loadedAt = _clock.GetUtcNow();
        await _server.ExecuteAsync("CONFIG", "SET", "maxmemory", "1");
        // Redis now refuses what needs memory: a commit fails as it does on a full disk.
        await Assert.ThrowsAsync<RedisDriverException>(() => SessionSteps.CreateAsync(driver, _clock));

        await driver.DestroyAsync(destroyed.Id, _clock.GetUtcNow(), _clock.GetUtcNow().AddHours(1), CancellationToken.None);
        _clock.Advance(SessionSteps.Idle + TimeSpan.FromMinutes(1));
        var info = await driver.GetInfoAsync(expired.Id, CancellationToken.None);
        Assert.True(await driver.ExpireSessionAsync(expired.Id, info!.IdleExpiresAt, CancellationToken.None));

        Assert.NotEqual(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(driver, _clock, destroyed, new() { ["a"] = [2] }, lease, releaseLock: true));
        foreach (var key in new[] { destroyed, expired })
        {
            // Read as by a server whose clock is still where it was: the session must not be served there either.
            var load = await driver.LoadAsync(new SessionLoadRequest { Key = key, Now = loadedAt, IdleTimeout = SessionSteps.Idle }, CancellationToken.None);
            Assert.NotEqual(SessionLoadStatus.Found, load.Status);
        }
    }
}
