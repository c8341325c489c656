using System.Diagnostics;
using System.Text;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>What the Redis driver owes a Redis Cluster beyond the conformance suite: sharding, cluster-wide wake-ups, one round trip.</summary>
[Collection(RedisClusterGroup.Name)]
public sealed class RedisClusterTests(RedisCluster cluster, ITestOutputHelper output) : IDisposable
{
    private readonly RedisTestDrivers _drivers = new(cluster.Configuration);
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    [Fact]
    public async Task CommitAsync_ManySessions_SpreadOverEveryMaster()
    {
        var driver = _drivers.Create(_clock);
        for (var i = 0; i < 30; i++)
        {
            await SessionSteps.CreateAsync(driver, _clock);
        }

        var perNode = new List<int>();
        foreach (var node in cluster.Nodes)
        {
            var keys = (object?[])(await node.ExecuteAsync("KEYS", _drivers.InstanceName + "*"))!;
            Assert.All(keys, k => Assert.StartsWith(_drivers.InstanceName + "s:{", Encoding.UTF8.GetString((byte[])k!), StringComparison.Ordinal));
            perNode.Add(keys.Length);
        }

        output.WriteLine($"Sessions per master: {string.Join(", ", perNode)}");
        Assert.Equal(30, perNode.Sum());
        Assert.All(perNode, count => Assert.True(count > 0, "A master holds no session."));
    }

    [Fact]
    public async Task WaitForReleaseAsync_SessionsOnEveryMaster_WakeWaiterOnAnotherConnection()
    {
        var holder = _drivers.Create(TimeProvider.System);
        var waiter = _drivers.Create(TimeProvider.System);

        // Enough sessions that some live on a master other than the one the waiter's subscription uses.
        for (var i = 0; i < 6; i++)
        {
            var key = await SessionSteps.CreateAsync(holder, _clock);
            var lease = (await SessionSteps.LoadAsync(holder, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
            Assert.Equal(SessionLoadStatus.LockBusy, (await SessionSteps.LoadAsync(waiter, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Status);
            await _drivers.WhenSubscribedAsync(waiter, cluster.Nodes);

            // Woken by the release, the wait ends long before its 60 s; half of them absorbs a busy machine.
            var watch = Stopwatch.StartNew();
            var wait = waiter.WaitForReleaseAsync(key.Id, TimeSpan.FromSeconds(60), CancellationToken.None);
            await holder.ReleaseLockAsync(key.Id, lease, CancellationToken.None);
            await wait.WaitAsync(TimeSpan.FromSeconds(120));

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"The wait took {watch.Elapsed} of its 60 s.");
            Assert.Equal(SessionLoadStatus.Found, (await SessionSteps.LoadAsync(waiter, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Status);
        }
    }

    [Fact]
    public async Task LoadWithLeaseAndCommitWithRelease_WhenWarm_AreOneScriptCallEachAcrossTheCluster()
    {
        var driver = _drivers.Create(_clock);

        // Warm up: load the scripts on every master's connection (30 random slots miss one of 3 masters once in 70,000 runs).
        for (var i = 0; i < 30; i++)
        {
            var warm = await SessionSteps.CreateAsync(driver, _clock);
            var warmLease = (await SessionSteps.LoadAsync(driver, _clock, warm, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
            await SessionSteps.CommitAsync(driver, _clock, warm, new() { ["a"] = [2] }, warmLease, releaseLock: true);
        }

        var key = await SessionSteps.CreateAsync(driver, _clock);
        var before = await cluster.GetCommandStatsAsync();
        var loaded = await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration));
        var middle = await cluster.GetCommandStatsAsync();
        var status = await SessionSteps.CommitAsync(driver, _clock, key, new() { ["a"] = [3] }, loaded.Lease, releaseLock: true);
        var after = await cluster.GetCommandStatsAsync();

        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal(SessionCommitStatus.Committed, status);

        var load = middle.Since(before);
        var commit = after.Since(middle);
        output.WriteLine($"load with lease, raw commandstats delta over 3 masters: {load}");
        output.WriteLine($"commit with release, raw commandstats delta over 3 masters: {commit}");
        Assert.Equal(1, load["eval"] + load["evalsha"]);
        Assert.Equal(1, commit["eval"] + commit["evalsha"]);
        Assert.Equal(0, load["script|load"] + commit["script|load"]);
        Assert.Equal(1, load.TopLevelCommands(RedisCommandStats.CommandsRunByAsmScripts));
        Assert.Equal(1, commit.TopLevelCommands(RedisCommandStats.CommandsRunByAsmScripts));
    }

    public void Dispose() => _drivers.Dispose();
}
