using System.Diagnostics;
using System.Globalization;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using Asm.Testing.Waiting;
using Xunit.Abstractions;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// The driver on a real six-node Redis Cluster of the test's own (three masters, one replica each, a 2 s node
/// timeout, slots served while others are failing over) while the cluster changes under it: a master killed with
/// SIGKILL and replaced by its replica, a slot moved between masters during operations.
/// </summary>
public sealed class RedisClusterFailoverTests(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>How long a condition is waited for; measured times are printed, far under it (docs/drivers.md).</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly RedisCluster _cluster = new()
    {
        ReplicasPerMaster = 1,
        NodeArguments = ["--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"],
    };

    private RedisTestDrivers _drivers = null!;

    public async Task InitializeAsync()
    {
        await _cluster.StartAsync();
        _drivers = new RedisTestDrivers(_cluster.Configuration);
    }

    public Task DisposeAsync()
    {
        _drivers.Dispose();
        _cluster.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task MasterKilled_ItsSessionsServedAgainAfterPromotion_OtherSessionsServedThroughout()
    {
        var clock = TimeProvider.System;

        // Every session is on its master's replica before the kill (WAIT), so a failover may lose none of them.
        var writer = _drivers.Create(clock, configure: o => o.WaitForReplicas = 1);
        var driver = _drivers.Create(clock);
        var holder = _drivers.Create(clock); // without WaitForReplicas: the promoted replica has no replica of its own
        var sessions = new List<(SessionKey Key, byte N, RedisServer Master)>();
        for (var i = 0; i < 30; i++)
        {
            var key = await SessionSteps.CreateAsync(writer, clock, new() { ["n"] = [(byte)i] });
            sessions.Add((key, (byte)i, await MasterOfAsync(writer, key)));
        }

        // The victim serves the slot of the lock-release channel, where the client subscribes: so the failover also
        // moves the driver's release subscription.
        var victim = await _cluster.MasterOfSlotAsync(await _cluster.SlotOfAsync(driver.ReleaseChannel));
        var replica = await _cluster.ReplicaOfAsync(victim);
        var orphaned = sessions.Where(s => s.Master == victim).ToList();
        var others = sessions.Where(s => s.Master != victim).ToList();
        Assert.NotEmpty(orphaned);
        Assert.NotEmpty(others);
        foreach (var session in sessions)
        {
            await AssertServedAsync(driver, clock, session.Key, session.N, commits: 0);
        }

        await _drivers.WhenSubscribedAsync(driver, victim);
        await AssertServedAsync(holder, clock, sessions[0].Key, sessions[0].N, commits: 0); // connected before the kill

        victim.Stop();
        var sinceKill = Stopwatch.StartNew();

        // Until every orphaned session is served again, each round reads and writes every other session (all must
        // succeed) and tries each orphaned one (which may fail only with the driver's clear exception).
        var pending = orphaned.ToDictionary(s => s.Key.Id);
        var commits = 0;
        var otherOperations = 0;
        var failures = 0;
        var slowestFailure = TimeSpan.Zero;
        TimeSpan? firstServed = null;
        while (pending.Count > 0)
        {
            Assert.True(sinceKill.Elapsed < Deadline, $"{pending.Count} of {orphaned.Count} sessions of the killed master were not served again within {Deadline.TotalSeconds} s.");
            commits++;
            foreach (var other in others)
            {
                Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(driver, clock, other.Key, new() { ["c"] = BitConverter.GetBytes(commits) }));
                await AssertServedAsync(driver, clock, other.Key, other.N, commits);
                otherOperations += 2;
            }

            foreach (var session in pending.Values.ToList())
            {
                var attempt = Stopwatch.StartNew();
                try
                {
                    var loaded = await SessionSteps.LoadAsync(driver, clock, session.Key);
                    Assert.Equal(SessionLoadStatus.Found, loaded.Status);
                    Assert.Equal([session.N], loaded.Values["n"]);
                    pending.Remove(session.Key.Id);
                    firstServed ??= sinceKill.Elapsed;
                }
                catch (RedisDriverException ex)
                {
                    failures++;
                    slowestFailure = TimeSpan.FromTicks(Math.Max(slowestFailure.Ticks, attempt.Elapsed.Ticks));
                    Assert.DoesNotContain(session.Key.Id, ex.Message, StringComparison.Ordinal);
                }
            }

            await Task.Delay(20);
        }

        var allServed = sinceKill.Elapsed;
        output.WriteLine(
            $"SIGKILL of a master holding {orphaned.Count} of {sessions.Count} sessions: the first of them served again after {firstServed!.Value.TotalMilliseconds:F0} ms, " +
            $"all after {allServed.TotalMilliseconds:F0} ms ({failures} failed attempts, the slowest in {slowestFailure.TotalMilliseconds:F0} ms); {otherOperations} operations on the {others.Count} other sessions meanwhile, none failed.");

        // Its replica took its slots (as every node learns by gossip), and every session takes writes again.
        foreach (var session in orphaned)
        {
            await Eventually.HoldsAsync(async () => await MasterOfAsync(driver, session.Key) == replica, Deadline, "the cluster to name the replica the slot's master");
            Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(driver, clock, session.Key, new() { ["c"] = BitConverter.GetBytes(1) }));
            await AssertServedAsync(driver, clock, session.Key, session.N, commits: 1);
        }

        // A release wakes a waiter whose subscription was on the killed master. Woken, the wait ends long before its
        // 60 s; half of them absorbs a busy machine.
        var held = orphaned[0].Key;
        var lease = (await SessionSteps.LoadAsync(holder, clock, held, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;
        Assert.Equal(SessionLoadStatus.LockBusy, (await SessionSteps.LoadAsync(driver, clock, held, SessionLease.Create(TimeSpan.FromSeconds(30)))).Status);
        await _drivers.WhenSubscribedAsync(driver, _cluster.Nodes.Where(node => node != victim));
        var woken = Stopwatch.StartNew();
        var wait = driver.WaitForReleaseAsync(held.Id, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(holder, clock, held, [], lease, releaseLock: true));
        await wait.WaitAsync(TimeSpan.FromSeconds(120));
        Assert.True(woken.Elapsed < TimeSpan.FromSeconds(30), $"The wait took {woken.Elapsed} of its 60 s.");
    }

    [Fact]
    public async Task MasterKilledAndFailedOver_ListingSessions_ListsEverySessionOnceFromTheMastersServingNow()
    {
        // The listing is what MigrateFrom's background mover reads from a previous driver on a Cluster.
        var clock = TimeProvider.System;
        var writer = _drivers.Create(clock, configure: o => o.WaitForReplicas = 1);
        var driver = _drivers.Create(clock);
        var ids = await SessionSteps.CreateManyAsync(writer, clock, 30);
        Assert.Equal(ids, await SessionSteps.ListAsync(driver));
        var victim = (await _cluster.MastersAsync())[0];
        var replica = await _cluster.ReplicaOfAsync(victim);
        var victimSlot = await FirstSlotOfAsync(victim, ids, driver);

        victim.Stop();

        // Once the replica serves the killed master's slots (and the client follows), every session is listed again,
        // each once, though the client still knows the dead master.
        await Eventually.HoldsAsync(async () => await _cluster.MasterOfSlotAsync(victimSlot) == replica, Deadline, "the cluster to name the replica the slot's master");
        await Eventually.HoldsAsync(
            () => SessionSteps.ServesAndListsExactlyAsync(driver, clock, ids),
            Deadline,
            "every session to be listed after the failover");
    }

    [Fact]
    public async Task Destroy_WhileTheSlotMigratesWithTheHashStillOnTheSource_LeavesTheTombstone()
    {
        // A script that let the key disappear mid-way would be refused its next write there (the missing key belongs
        // to the target now), leaving neither the session nor its tombstone.
        var clock = TimeProvider.System;
        var driver = _drivers.Create(clock);
        var (key, slot, source, target) = await SessionToMoveAsync(driver, clock);
        await _cluster.BeginSlotMigrationAsync(slot, source, target);

        var now = clock.GetUtcNow();
        await driver.DestroyAsync(key.Id, now, now + TimeSpan.FromMinutes(20), CancellationToken.None);

        Assert.Equal(SessionLoadStatus.Destroyed, (await SessionSteps.LoadAsync(driver, clock, key)).Status);
        Assert.Equal(SessionCommitStatus.NotFound, await SessionSteps.CommitAsync(driver, clock, key, new() { ["n"] = [8] }));
    }

    [Fact]
    public async Task SlotMigratedDuringOperations_ClientFollowsAskAndMoved_SessionNeitherLostNorCorrupt()
    {
        var clock = TimeProvider.System;
        var driver = _drivers.Create(clock);
        var (key, slot, source, target) = await SessionToMoveAsync(driver, clock);

        // One request after another, each locking the session, reading it and committing one more change, then one that
        // reads it without a lease (a plain HGETALL, no script): every one must find the session whole and commit,
        // wherever the slot is.
        var commits = 0;
        using var stop = new CancellationTokenSource();
        var requests = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var loaded = await SessionSteps.LoadAsync(driver, clock, key, SessionLease.Create(SessionSteps.LeaseDuration));
                Assert.Equal(SessionLoadStatus.Found, loaded.Status);
                Assert.Equal([7], loaded.Values["n"]);
                Assert.Equal(BitConverter.GetBytes(commits), loaded.Values.GetValueOrDefault("c") ?? BitConverter.GetBytes(0));
                var status = await SessionSteps.CommitAsync(driver, clock, key, new() { ["c"] = BitConverter.GetBytes(commits + 1) }, loaded.Lease, releaseLock: true);
                Assert.Equal(SessionCommitStatus.Committed, status);
                var read = await SessionSteps.LoadAsync(driver, clock, key);
                Assert.Equal(SessionLoadStatus.Found, read.Status);
                Assert.Equal(BitConverter.GetBytes(commits + 1), read.Values["c"]);
                Interlocked.Increment(ref commits);
            }
        });

        var watch = Stopwatch.StartNew();
        await _cluster.BeginSlotMigrationAsync(slot, source, target);
        var migrating = await RequestsAfterAsync(requests, () => Volatile.Read(ref commits), 10);

        // The session's keys are on the target now while the slot is still migrating: the source answers ASK.
        Assert.True(await _cluster.MigrateSlotKeysAsync(slot, source, target) >= 1);
        var asking = await RequestsAfterAsync(requests, () => Volatile.Read(ref commits), 10);

        // The target owns the slot: the source answers MOVED until the client has learned it.
        await _cluster.EndSlotMigrationAsync(slot, target);
        var moved = await RequestsAfterAsync(requests, () => Volatile.Read(ref commits), 10);

        await stop.CancelAsync();
        await requests.WaitAsync(Deadline);
        output.WriteLine(
            $"slot {slot} moved from {source.EndPoint} to {target.EndPoint} in {watch.ElapsedMilliseconds} ms under {commits} locked read-and-commit requests " +
            $"({migrating} while migrating with the keys on the source, {asking} with them on the target, {moved} after the move); " +
            $"the source answered ASK {await ErrorCountAsync(source, "ASK")} and MOVED {await ErrorCountAsync(source, "MOVED")} times.");

        await Eventually.HoldsAsync(async () => await _cluster.MasterOfSlotAsync(slot) == target, Deadline, "the cluster to name the target the slot's master");
        Assert.True(await ErrorCountAsync(source, "ASK") > 0, "The source never answered ASK: the test did not exercise it.");
        Assert.True(await ErrorCountAsync(source, "MOVED") > 0, "The source never answered MOVED: the test did not exercise it.");
        var final = await SessionSteps.LoadAsync(driver, clock, key);
        Assert.Equal(SessionLoadStatus.Found, final.Status);
        Assert.Equal(BitConverter.GetBytes(commits), final.Values["c"]);
    }

    /// <summary>A new session (value n = 7), its slot, the master that holds it and another master to move it to.</summary>
    private async Task<(SessionKey Key, int Slot, RedisServer Source, RedisServer Target)> SessionToMoveAsync(RedisDriver driver, TimeProvider clock)
    {
        var key = await SessionSteps.CreateAsync(driver, clock, new() { ["n"] = [7] });
        var slot = await _cluster.SlotOfAsync(driver.SessionKeyOf(key.Id));
        var source = await _cluster.MasterOfSlotAsync(slot);
        return (key, slot, source, (await _cluster.MastersAsync()).First(m => m != source));
    }

    private async Task<int> FirstSlotOfAsync(RedisServer master, IEnumerable<string> ids, RedisDriver driver)
    {
        foreach (var id in ids)
        {
            var slot = await _cluster.SlotOfAsync(driver.SessionKeyOf(id));
            if (await _cluster.MasterOfSlotAsync(slot) == master)
            {
                return slot;
            }
        }

        throw new InvalidOperationException("No session is on that master.");
    }

    /// <summary>Waits until <paramref name="count"/> more requests have completed (or the requests failed); returns how many did.</summary>
    private static async Task<int> RequestsAfterAsync(Task requests, Func<int> completed, int count)
    {
        var start = completed();
        var watch = Stopwatch.StartNew();
        while (completed() < start + count)
        {
            if (requests.IsCompleted)
            {
                await requests;
                Assert.Fail("The requests stopped.");
            }

            Assert.True(watch.Elapsed < Deadline, $"Only {completed() - start} requests completed in {Deadline.TotalSeconds} s.");
            await Task.Delay(10);
        }

        return completed() - start;
    }

    private static async Task AssertServedAsync(RedisDriver driver, TimeProvider clock, SessionKey key, byte n, int commits)
    {
        var loaded = await SessionSteps.LoadAsync(driver, clock, key);
        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal([n], loaded.Values["n"]);
        Assert.Equal(commits == 0 ? null : BitConverter.GetBytes(commits), loaded.Values.GetValueOrDefault("c"));
    }

    private async Task<RedisServer> MasterOfAsync(RedisDriver driver, SessionKey key) =>
        await _cluster.MasterOfSlotAsync(await _cluster.SlotOfAsync(driver.SessionKeyOf(key.Id)));

    /// <summary>How many error replies of <paramref name="prefix"/> (such as <c>MOVED</c>) <paramref name="node"/> has sent, from <c>INFO errorstats</c>.</summary>
    private static async Task<long> ErrorCountAsync(RedisServer node, string prefix)
    {
        var line = (await node.ExecuteTextAsync("INFO", "errorstats") ?? "").Split('\n')
            .Select(l => l.Trim())
            .FirstOrDefault(l => l.StartsWith($"errorstat_{prefix}:count=", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line[(line.IndexOf('=', StringComparison.Ordinal) + 1)..], CultureInfo.InvariantCulture);
    }
}
