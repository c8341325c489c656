using System.Globalization;
using Asm.Caching.Caching;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// Counts, with <c>INFO commandstats</c> deltas, the commands each operation sends. The server is this class's own,
/// so that no other test's traffic lands in a delta.
/// </summary>
public sealed class RedisRoundTripTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);

    private readonly RedisServer _server = new();
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private RedisTestDrivers _drivers = null!;
    private RedisDriver _driver = null!;

    public async Task InitializeAsync()
    {
        await _server.StartAsync();
        _drivers = new RedisTestDrivers(_server.EndPoint);
        _driver = _drivers.Create(_clock);
    }

    public Task DisposeAsync()
    {
        _drivers.Dispose();
        _server.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task LoadWithLeaseAndCommitWithRelease_WhenWarm_AreOneScriptCallEach()
    {
        // Warm up: the client loads each script once per connection (SCRIPT LOAD, pipelined with the first EVALSHA).
        var warm = await CreateAsync();
        var warmLease = (await LoadAsync(warm, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;
        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(warm, warmLease));

        var key = await CreateAsync();

        var (load, loadStats) = await MeasureAsync(() => LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30))));
        Assert.Equal(SessionLoadStatus.Found, load.Status);
        AssertOneRoundTrip("load with lease", loadStats);

        var (commit, commitStats) = await MeasureAsync(() => CommitAsync(key, load.Lease!));
        Assert.Equal(SessionCommitStatus.Committed, commit);
        AssertOneRoundTrip("commit with release", commitStats);
        Assert.Equal(0, commitStats["publish"]); // nobody waits for the lock: no message
    }

    [Fact]
    public async Task CommitWithRelease_AfterALoadWasRefused_PublishesOnce_AndTheNextReleaseNot()
    {
        var key = await CreateAsync();
        var lease = (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;
        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Status);
        var mark = _drivers.InstanceName + "w:{" + key.Id + "}";
        Assert.InRange(Convert.ToInt64(await _server.ExecuteAsync("PTTL", mark), CultureInfo.InvariantCulture), 1, 30_000);

        var (commit, stats) = await MeasureAsync(() => CommitAsync(key, lease));

        Assert.Equal(SessionCommitStatus.Committed, commit);
        Assert.Equal(1, stats["publish"]);
        Assert.Equal(0L, await _server.ExecuteAsync("EXISTS", mark));
        var next = (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;
        var (_, nextStats) = await MeasureAsync(() => CommitAsync(key, next));
        Assert.Equal(0, nextStats["publish"]);
    }

    [Fact]
    public async Task ReleaseAndDestroy_PublishOnlyAfterALoadWasRefused()
    {
        var key = await CreateAsync();
        var lease = (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;
        var (_, unwaited) = await MeasureAsync(() => Done(_driver.ReleaseLockAsync(key.Id, lease, CancellationToken.None)));
        Assert.Equal(0, unwaited["publish"]);

        lease = (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;
        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Status);
        var (_, waited) = await MeasureAsync(() => Done(_driver.ReleaseLockAsync(key.Id, lease, CancellationToken.None)));
        Assert.Equal(1, waited["publish"]);

        var now = _clock.GetUtcNow();
        var (_, destroyed) = await MeasureAsync(() => Done(_driver.DestroyAsync(key.Id, now, now + TimeSpan.FromMinutes(20), CancellationToken.None)));
        Assert.Equal(0, destroyed["publish"]);

        var other = await CreateAsync();
        Assert.NotNull((await LoadAsync(other, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease);
        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(other, SessionLease.Create(TimeSpan.FromSeconds(30)))).Status);
        var (_, destroyedWhileWaited) = await MeasureAsync(() => Done(_driver.DestroyAsync(other.Id, now, now + TimeSpan.FromMinutes(20), CancellationToken.None)));
        Assert.Equal(1, destroyedWhileWaited["publish"]);
    }

    [Fact]
    public void CommandsRunByAsmScripts_ReadFromScripts_ListsWhatScriptsCall()
    {
        Assert.Equal(
            ["del", "exists", "hdel", "hget", "hgetall", "hkeys", "hmget", "hset", "pexpire", "publish", "sadd", "smembers", "srem", "time", "zadd", "zpopmin", "zrangebyscore", "zrem"],
            RedisCommandStats.CommandsRunByAsmScripts);
    }

    [Fact]
    public async Task LoadWithLease_FirstOnServer_IsRefusedBySha_SendsTheScriptOnce_ThenRunsBySha()
    {
        var key = await CreateAsync();

        var (load, stats) = await MeasureAsync(() => LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30))));
        output.WriteLine($"cold load with lease: raw commandstats delta: {stats}");
        Assert.Equal(SessionLoadStatus.Found, load.Status);
        Assert.Equal(1, stats["evalsha"]); // refused (NOSCRIPT): the server has not seen the script
        Assert.Equal(2, stats["evalsha"] + stats["eval"]); // then sent with its text once (the client may load it first)
        Assert.InRange(stats["script|load"], 0, 1);

        var (warm, warmStats) = await MeasureAsync(() => LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30))));
        output.WriteLine($"warm load with lease: raw commandstats delta: {warmStats}");
        Assert.Equal(SessionLoadStatus.LockBusy, warm.Status);
        Assert.Equal(1, warmStats["evalsha"]);
        Assert.Equal(0, warmStats["eval"] + warmStats["script|load"]);
    }

    [Fact]
    public async Task Operations_AfterServerLosesScriptCache_ResendScriptAndSucceed()
    {
        var driver = _drivers.Create(_clock);
        var key = await SessionSteps.CreateAsync(driver, _clock);
        Assert.Equal(SessionLoadStatus.Found, (await SessionSteps.LoadAsync(driver, _clock, key)).Status);

        await _server.ExecuteAsync("SCRIPT", "FLUSH");

        // With a lease: a load without one is a plain read, no script.
        var (load, stats) = await MeasureAsync(() => SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration)));
        output.WriteLine($"load after SCRIPT FLUSH: raw commandstats delta: {stats}");
        Assert.Equal(SessionLoadStatus.Found, load.Status);
        Assert.Equal(1, stats["evalsha"]);
        Assert.Equal(1, stats["eval"]);
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(driver, _clock, key, new() { ["a"] = [5] }, load.Lease, releaseLock: true));
    }

    [Fact]
    public async Task CacheGetWithSlidingExpiry_WhenWarm_IsOneScriptCall()
    {
        var expiration = new CacheEntryExpiration(_clock.GetUtcNow(), null, TimeSpan.FromMinutes(10));
        await _driver.SetAsync("warm", [1], expiration, CancellationToken.None);
        await _driver.GetAsync("warm", _clock.GetUtcNow(), CancellationToken.None);
        await _driver.SetAsync("key", [1, 2, 3], expiration, CancellationToken.None);

        var (value, stats) = await MeasureAsync(() => _driver.GetAsync("key", _clock.GetUtcNow(), CancellationToken.None).AsTask());

        Assert.Equal([1, 2, 3], value);
        AssertOneRoundTrip("cache get", stats);
    }

    [Fact]
    public async Task EveryOtherOperation_WhenWarm_IsOneCommand()
    {
        // Each operation twice, on a fresh session: the first pass loads the scripts on this connection.
        for (var pass = 0; pass < 2; pass++)
        {
            var key = await CreateAsync();
            var lease = (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;
            var newKey = key.WithNewSecret();
            var now = _clock.GetUtcNow();
            var stats = new List<(string Operation, RedisCommandStats Delta)>
            {
                ("renew", (await MeasureAsync(() => _driver.RenewLockAsync(key.Id, lease, now, CancellationToken.None).AsTask())).Delta),
                ("release", (await MeasureAsync(() => Done(_driver.ReleaseLockAsync(key.Id, lease, CancellationToken.None)))).Delta),
                ("regenerate", (await MeasureAsync(() => _driver.RegenerateAsync(
                    new SessionRegenerateRequest { Key = key, NewSecret = newKey.Secret, Now = now, ZombieExpiresAt = now + TimeSpan.FromMinutes(1) },
                    CancellationToken.None).AsTask())).Delta),
                ("destroy", (await MeasureAsync(() => Done(_driver.DestroyAsync(key.Id, now, now + Idle, CancellationToken.None)))).Delta),
                ("cache set", (await MeasureAsync(() => Done(_driver.SetAsync("k", [1], new CacheEntryExpiration(now, null, null), CancellationToken.None)))).Delta),
                ("cache refresh", (await MeasureAsync(() => Done(_driver.RefreshAsync("k", now, CancellationToken.None)))).Delta),
            };
            var (_, remove) = await MeasureAsync(() => Done(_driver.RemoveAsync("k", CancellationToken.None)));
            if (pass == 1)
            {
                foreach (var (operation, delta) in stats)
                {
                    AssertOneRoundTrip(operation, delta);
                }

                // Remove is a plain UNLINK (the client's key deletion), no script.
                output.WriteLine($"cache remove: raw commandstats delta: {remove}");
                Assert.Equal(new Dictionary<string, long> { ["unlink"] = 1 }, remove.Calls);
            }
        }
    }

    private static async Task<bool> Done(ValueTask task)
    {
        await task;
        return true;
    }

    private void AssertOneRoundTrip(string operation, RedisCommandStats delta)
    {
        var topLevel = delta.TopLevelCommands(RedisCommandStats.CommandsRunByAsmScripts);
        output.WriteLine($"{operation}: {topLevel} top-level command(s) (eval={delta["eval"]}, evalsha={delta["evalsha"]}); raw commandstats delta: {delta}");
        Assert.Equal(1, topLevel);
    }

    private async Task<(T Result, RedisCommandStats Delta)> MeasureAsync<T>(Func<Task<T>> operation)
    {
        var before = await _server.GetCommandStatsAsync();
        var result = await operation();
        var after = await _server.GetCommandStatsAsync();
        return (result, after.Since(before));
    }

    private Task<SessionKey> CreateAsync() => SessionSteps.CreateAsync(_driver, _clock);

    private Task<SessionLoadResult> LoadAsync(SessionKey key, SessionLease? lease) =>
        _driver.LoadAsync(new SessionLoadRequest { Key = key, Now = _clock.GetUtcNow(), IdleTimeout = Idle, Lease = lease }, CancellationToken.None).AsTask();

    private Task<SessionCommitStatus> CommitAsync(SessionKey key, SessionLease lease) =>
        _driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                Now = _clock.GetUtcNow(),
                IdleTimeout = Idle,
                Lease = lease,
                ReleaseLock = true,
                Changes = new Dictionary<string, byte[]?> { ["a"] = [2] },
                AddProfiles = ["browser"],
            },
            CancellationToken.None).AsTask();
}
