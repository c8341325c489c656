using System.Diagnostics;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using Asm.Testing.Waiting;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging.Testing;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// The driver in Sentinel mode (<c>sentinels,serviceName=mymaster</c>) on a real master, replica and three sentinels
/// of the test's own, including a failover after the master is killed with SIGKILL.
/// </summary>
public sealed class RedisSentinelTests(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>How long requests may fail after the master dies; measured well under it (docs/drivers.md).</summary>
    private static readonly TimeSpan RecoveryBound = TimeSpan.FromSeconds(30);

    private readonly RedisSentinelGroup _group = new();
    private RedisTestDrivers _drivers = null!;

    public async Task InitializeAsync()
    {
        await _group.StartAsync();
        _drivers = new RedisTestDrivers(_group.Configuration);
    }

    public Task DisposeAsync()
    {
        _drivers.Dispose();
        _group.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task ServiceNameConfiguration_CommitWithWaitForReplicas_IsOnTheReplicaWhenItReturns()
    {
        var driver = _drivers.Create(TimeProvider.System, configure: o => o.WaitForReplicas = 1);
        var plain = _drivers.Create(TimeProvider.System);

        var key = await SessionSteps.CreateAsync(driver, TimeProvider.System, new() { ["a"] = [1] });
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(driver, TimeProvider.System, key, new() { ["a"] = [2] }));

        // No polling: WAIT returned, so the replica has both writes now.
        var stored = driver.SessionKeyOf(key.Id);
        Assert.Equal(1L, await _group.Master.ExecuteAsync("EXISTS", stored));
        Assert.Equal(1L, await _group.Replica.ExecuteAsync("EXISTS", stored));
        Assert.Equal([2], (await SessionSteps.LoadAsync(plain, TimeProvider.System, key)).Values["a"]);

        // What WAIT costs per commit here (printed, not asserted: speed is measured in bench/).
        output.WriteLine($"commit p50 without WAIT: {await MedianCommitAsync(plain, key):F3} ms; with WaitForReplicas = 1: {await MedianCommitAsync(driver, key):F3} ms");
    }

    [Fact]
    public async Task MasterKilled_ReplicaPromoted_SessionsServedAgainNothingReplicatedLostOldHolderCommitRefused()
    {
        var clock = TimeProvider.System;
        var holder = _drivers.Create(clock);
        var next = _drivers.Create(clock);
        var keys = new List<SessionKey>();
        for (var i = 0; i < 20; i++)
        {
            keys.Add(await SessionSteps.CreateAsync(holder, clock, new() { ["n"] = [(byte)i] }));
        }

        // The holder's lock (1 s lease) and every session reach the replica before the master dies.
        var locked = keys[0];
        var lease = (await SessionSteps.LoadAsync(holder, clock, locked, SessionLease.Create(TimeSpan.FromSeconds(1)))).Lease!;
        await WaitForReplicaToCatchUpAsync();

        _group.Master.Stop();
        var sinceKill = Stopwatch.StartNew();

        // Requests fail with the driver's clear exception (and nothing else) until the replica is promoted.
        var failures = 0;
        SessionLoadResult served;
        while (true)
        {
            try
            {
                served = await SessionSteps.LoadAsync(next, clock, keys[1]);
                break;
            }
            catch (RedisDriverException ex) when (sinceKill.Elapsed < RecoveryBound)
            {
                failures++;
                Assert.DoesNotContain(keys[1].Id, ex.Message, StringComparison.Ordinal);
                await Task.Delay(50);
            }
        }

        var recovered = sinceKill.Elapsed;
        await _group.WaitForMasterAsync(_group.Replica);
        output.WriteLine($"served again {recovered.TotalMilliseconds:F0} ms after SIGKILL of the master ({failures} failed attempts at 50 ms intervals); every sentinel named the replica master after {sinceKill.Elapsed.TotalMilliseconds:F0} ms");

        Assert.Equal(SessionLoadStatus.Found, served.Status);
        for (var i = 0; i < keys.Count; i++)
        {
            var loaded = await SessionSteps.LoadAsync(next, clock, keys[i]);
            Assert.Equal(SessionLoadStatus.Found, loaded.Status);
            Assert.Equal([(byte)i], loaded.Values["n"]);
        }

        // The old holder's lease ran out on the new master; another request takes the lock, and the old holder's
        // late commit is refused by token and fence.
        SessionLease taken;
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var load = await SessionSteps.LoadAsync(next, clock, locked, SessionLease.Create(TimeSpan.FromSeconds(30)));
            if (load.Status == SessionLoadStatus.Found)
            {
                taken = load.Lease!;
                break;
            }

            Assert.Equal(SessionLoadStatus.LockBusy, load.Status);
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(60), "The old holder's 1 s lease did not run out on the new master in 60 s.");
            await Task.Delay(100);
        }

        Assert.Equal(SessionCommitStatus.LockLost, await SessionSteps.CommitAsync(holder, clock, locked, new() { ["n"] = [100] }, lease, releaseLock: true));
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(next, clock, locked, new() { ["n"] = [200] }, taken, releaseLock: true));
        Assert.Equal([200], (await SessionSteps.LoadAsync(next, clock, locked)).Values["n"]);

        // The holder's connection followed the failover with its release subscription: a release on the new master
        // wakes it. Woken, the wait ends long before its 60 s; half of them absorbs a busy machine.
        var busy = (await SessionSteps.LoadAsync(next, clock, keys[2], SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;
        Assert.Equal(SessionLoadStatus.LockBusy, (await SessionSteps.LoadAsync(holder, clock, keys[2], SessionLease.Create(TimeSpan.FromSeconds(30)))).Status);
        await _drivers.WhenSubscribedAsync(holder, _group.Replica);
        var woken = Stopwatch.StartNew();
        var wait = holder.WaitForReleaseAsync(keys[2].Id, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(next, clock, keys[2], new() { ["n"] = [2] }, busy, releaseLock: true));
        await wait.WaitAsync(TimeSpan.FromSeconds(120));
        Assert.True(woken.Elapsed < TimeSpan.FromSeconds(30), $"The wait took {woken.Elapsed} of its 60 s.");
    }

    [Fact]
    public async Task MasterKilled_ReplicaPromoted_ListingSessionsListsEverySessionOnce()
    {
        // The listing is what MigrateFrom's background mover reads from a previous driver.
        var clock = TimeProvider.System;
        var writer = _drivers.Create(clock, configure: o => o.WaitForReplicas = 1);
        var driver = _drivers.Create(clock);
        var ids = await SessionSteps.CreateManyAsync(writer, clock, 10);
        Assert.Equal(ids, await SessionSteps.ListAsync(driver));

        _group.Master.Stop();
        await _group.WaitForMasterAsync(_group.Replica);

        // Once the client follows the promotion, every session is listed again, each once, though the client still
        // knows the killed master.
        await Eventually.HoldsAsync(
            () => SessionSteps.ServesAndListsExactlyAsync(driver, clock, ids),
            TimeSpan.FromSeconds(60),
            "every session to be listed again after the promotion");
    }

    [Fact]
    public async Task MasterUnreachableFromTheAppAndReplicaBehind_ReadsAndHealthCheck_FailAsUnreachableInsteadOfAskingTheReplica()
    {
        // The master is alive and keeps its sentinels (no failover), but takes no new connection (maxclients): the
        // app's connections to it are cut and cannot come back, as in a partition between the app and the master.
        // The replica's link was cut first, so it is behind: it has "a" = 1, the master "a" = 2; it has the user's
        // index without the session added since, and the session destroyed since alive.
        var clock = TimeProvider.System;
        var logger = new FakeLogger<RedisDriver>();
        var driver = _drivers.Create(clock, logger);
        var key = await SessionSteps.CreateAsync(driver, clock, new() { ["a"] = [1] });
        var destroyed = await SessionSteps.CreateAsync(driver, clock);
        const string User = "alice";
        await driver.AddToUserIndexAsync(User, key.Id, CancellationToken.None);
        await WaitForReplicaToCatchUpAsync();

        // The test's own commands go over one connection made before the master stops taking new ones.
        await using var admin = await ConnectionMultiplexer.ConnectAsync($"{_group.Master.EndPoint},allowAdmin=true,name=admin");
        var master = admin.GetServer(_group.Master.EndPoint);
        try
        {
            await master.ExecuteAsync("CONFIG", "SET", "maxclients", "1");
            await master.ExecuteAsync("CLIENT", "KILL", "TYPE", "replica");
            Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(driver, clock, key, new() { ["a"] = [2] }));
            await driver.AddToUserIndexAsync(User, destroyed.Id, CancellationToken.None);
            await driver.DestroyAsync(destroyed.Id, clock.GetUtcNow(), clock.GetUtcNow().AddHours(1), CancellationToken.None);
            var clients = (string?)await master.ExecuteAsync("CLIENT", "LIST");
            foreach (var id in clients!.Split('\n').Where(l => l.Contains(" name=asm-test-", StringComparison.Ordinal)).Select(l => l.Split(' ')[0]["id=".Length..]))
            {
                await master.ExecuteAsync("CLIENT", "KILL", "ID", id);
            }

            // The driver has seen its connection to the master fail (event 302), so nothing below is sent on it.
            var cut = Stopwatch.StartNew();
            while (!logger.Collector.GetSnapshot().Any(r => r.Id.Id == 302 && r.Message.Contains($"Interactive connection to Redis at {_group.Master.EndPoint} ", StringComparison.Ordinal)))
            {
                Assert.True(cut.Elapsed < TimeSpan.FromSeconds(60), "The driver did not see its connection to the master fail in 60 s.");
                await Task.Delay(20);
            }

            // A read (HGETALL) is not answered by the replica, which would give the stale "a" = 1, nor are the scripts
            // that only read (a user's index, which would miss a session, and a session's info, which would find the
            // destroyed one alive), nor is the health check's PING; a script that writes, sent there, is refused
            // (READONLY) having run nothing.
            var read = await Record.ExceptionAsync(async () => output.WriteLine($"read a = {(await SessionSteps.LoadAsync(driver, clock, key)).Values["a"][0]}"));
            var index = await Record.ExceptionAsync(async () => output.WriteLine($"index: {string.Join(", ", await driver.GetUserIndexAsync(User, CancellationToken.None))}"));
            var info = await Record.ExceptionAsync(async () => output.WriteLine($"destroyed: {(await driver.GetInfoAsync(destroyed.Id, CancellationToken.None))?.Destroyed}"));
            var health = await driver.CheckHealthAsync(new HealthCheckContext { Registration = new("redis", driver, HealthStatus.Unhealthy, null) });
            var locked = await Record.ExceptionAsync(() => SessionSteps.LoadAsync(driver, clock, key, SessionLease.Create(TimeSpan.FromSeconds(30))));
            var commit = await Record.ExceptionAsync(() => SessionSteps.CommitAsync(driver, clock, key, new() { ["a"] = [3] }));
            output.WriteLine($"read: {read?.Message ?? "(no failure)"}");
            output.WriteLine($"health: {health.Status} {health.Description}");
            output.WriteLine($"locked load: {locked?.Message ?? "(no failure)"}");
            output.WriteLine($"commit: {commit?.Message ?? "(no failure)"}");

            output.WriteLine($"index: {index?.Message ?? "(no failure)"}");
            output.WriteLine($"info: {info?.Message ?? "(no failure)"}");
            foreach (var failure in new[] { read, index, info })
            {
                Assert.IsType<RedisDriverException>(failure);
                Assert.Contains("cannot be reached", failure.Message, StringComparison.Ordinal);
            }

            Assert.Equal(HealthStatus.Unhealthy, health.Status);
            Assert.IsType<RedisDriverException>(locked);
            Assert.IsType<RedisDriverException>(commit);
        }
        finally
        {
            await master.ExecuteAsync("CONFIG", "SET", "maxclients", "10000");
        }
    }

    private async Task WaitForReplicaToCatchUpAsync()
    {
        var target = ReplicationOffset(await _group.Master.ExecuteTextAsync("INFO", "replication"));
        var deadline = Stopwatch.StartNew();
        while (ReplicationOffset(await _group.Replica.ExecuteTextAsync("INFO", "replication")) < target)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), "The replica did not catch up in 60 s.");
            await Task.Delay(20);
        }
    }

    private static long ReplicationOffset(string? info) =>
        long.Parse(
            info!.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith("master_repl_offset:", StringComparison.Ordinal))["master_repl_offset:".Length..],
            System.Globalization.CultureInfo.InvariantCulture);

    private static async Task<double> MedianCommitAsync(RedisDriver driver, SessionKey key)
    {
        var times = new List<double>();
        for (var i = 0; i < 200; i++)
        {
            var watch = Stopwatch.StartNew();
            await SessionSteps.CommitAsync(driver, TimeProvider.System, key, new() { ["a"] = [(byte)i] });
            times.Add(watch.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        return times[times.Count / 2];
    }
}
