using System.Diagnostics;
using System.Globalization;
using System.Text;
using Asm.Caching.Caching;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// What the Redis driver stores and how it meets damaged data, hostile keys and other processes, on a standalone
/// Redis.
/// </summary>
[Collection(RedisServerGroup.Name)]
public sealed class RedisDriverStorageTests(RedisServer server) : IDisposable
{
    private readonly RedisTestDrivers _drivers = new(server.EndPoint);
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    /// <summary>Ways to damage a stored session: each is a list of raw commands; <c>{key}</c> is the session's key.</summary>
    public static TheoryData<string, string[][]> Damages => new()
    {
        { "created at is not a number", [["HSET", "{key}", "c", "yesterday"]] },
        { "idle expiry in float notation", [["HSET", "{key}", "ie", "1e3"]] },
        { "fence past 16 digits", [["HSET", "{key}", "f", "12345678901234567"]] },
        { "unknown layout version", [["HSET", "{key}", "fmt", "2"]] },
        { "no layout version", [["HDEL", "{key}", "fmt"]] },
        { "no secret", [["HDEL", "{key}", "s"]] },
        { "tombstone flag not 1", [["HSET", "{key}", "x", "maybe"]] },
        { "zombie without sequence", [["HSET", "{key}", "z:old-secret", "soon"]] },
        { "profile order not a number", [["HSET", "{key}", "p:phone", "first"]] },
        { "lock token without expiry", [["HDEL", "{key}", "lx"]] },
        { "unknown field", [["HSET", "{key}", "junk", "1"]] },
        { "field too short for a prefix", [["HSET", "{key}", "v", "1"]] },
        { "a string instead of a hash", [["DEL", "{key}"], ["SET", "{key}", "garbage"]] },
        { "a list instead of a hash", [["DEL", "{key}"], ["RPUSH", "{key}", "a", "b"]] },
    };

    [Fact]
    public async Task CommitAsync_ClearingThousandsOfValuesWhileSettingAndDeletingThousands_WritesExactlyTheDelta()
    {
        // More fields than one HSET or HDEL of the scripts takes (they write in slices of 1000 arguments), with names
        // cleared and set again in the same commit.
        var driver = _drivers.Create(_clock);
        var before = Enumerable.Range(0, 2600).ToDictionary(i => $"old{i}", i => (byte[]?)[(byte)i]);
        var key = await SessionSteps.CreateAsync(driver, _clock, before);
        var lease = (await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
        var changes = Enumerable.Range(0, 2600).ToDictionary(i => $"new{i}", i => (byte[]?)[(byte)(i + 1)]);
        for (var i = 0; i < 1300; i++)
        {
            changes[$"old{i}"] = [42];
        }

        for (var i = 1300; i < 2600; i++)
        {
            changes[$"old{i}"] = null;
        }

        var status = await driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id, Now = _clock.GetUtcNow(), IdleTimeout = SessionSteps.Idle, Lease = lease, ReleaseLock = true, Clear = true, Changes = changes,
            },
            CancellationToken.None);

        Assert.Equal(SessionCommitStatus.Committed, status);
        var loaded = await SessionSteps.LoadAsync(driver, _clock, key);
        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal(3900, loaded.Values.Count);
        Assert.All(Enumerable.Range(0, 1300), i => Assert.Equal([42], loaded.Values[$"old{i}"]));
        Assert.All(Enumerable.Range(1300, 1300), i => Assert.False(loaded.Values.ContainsKey($"old{i}")));
        Assert.All(Enumerable.Range(0, 2600), i => Assert.Equal([(byte)(i + 1)], loaded.Values[$"new{i}"]));
        Assert.False((await HashAsync(driver.SessionKeyOf(key.Id))).ContainsKey("lt"));
    }

    [Fact]
    public async Task CommitAsync_NewSessionWithLeaseAndProfile_StoresDocumentedLayoutWithPhysicalExpiry()
    {
        var driver = _drivers.Create(_clock);
        var key = await SessionSteps.CreateAsync(driver, _clock, new() { ["cart"] = [1, 2] });
        var lease = (await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(driver, _clock, key, [], lease, profiles: ["browser"]));

        var redisKey = driver.SessionKeyOf(key.Id);
        Assert.Equal($"{_drivers.InstanceName}s:{{{key.Id}}}", redisKey);
        var fields = await HashAsync(redisKey);
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        var idle = (long)SessionSteps.Idle.TotalMilliseconds;

        Assert.Equal(
            ["c", "f", "fmt", "ie", "lt", "lx", "n", "p:browser", "pa", "s", "v:cart"],
            fields.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("1", Text(fields["fmt"]));
        Assert.Equal(key.Secret, Text(fields["s"]));
        Assert.Equal(now, long.Parse(Text(fields["c"]), CultureInfo.InvariantCulture));
        Assert.Equal(now + idle, long.Parse(Text(fields["ie"]), CultureInfo.InvariantCulture));
        Assert.Equal(now + idle + idle, long.Parse(Text(fields["pa"]), CultureInfo.InvariantCulture));
        Assert.Equal("1", Text(fields["f"]));
        Assert.Equal(lease.Token, Text(fields["lt"]));
        Assert.Equal([1, 2], fields["v:cart"]);

        var ttl = (long)(await server.ExecuteAsync("PTTL", redisKey))!;
        Assert.InRange(ttl, (2 * idle) - 10_000, 2 * idle);
    }

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task EveryOperation_DamagedSessionHash_ReportsCorruptOrNotFoundWithoutThrowing(string damage, string[][] commands)
    {
        var driver = _drivers.Create(_clock);
        var key = await SessionSteps.CreateAsync(driver, _clock);
        var lease = (await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
        var redisKey = driver.SessionKeyOf(key.Id);
        foreach (var command in commands)
        {
            await server.ExecuteAsync([.. command.Select(part => part == "{key}" ? redisKey : part)]);
        }

        Assert.Equal(SessionLoadStatus.Corrupt, (await SessionSteps.LoadAsync(driver, _clock, key)).Status);
        Assert.Equal(SessionLoadStatus.Corrupt, (await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Status);
        Assert.Equal(SessionCommitStatus.NotFound, await SessionSteps.CommitAsync(driver, _clock, key, new() { ["a"] = [2] }));
        Assert.False(await driver.RenewLockAsync(key.Id, lease, _clock.GetUtcNow(), CancellationToken.None));
        await driver.ReleaseLockAsync(key.Id, lease, CancellationToken.None);
        Assert.Equal(SessionCommitStatus.NotFound, await SessionSteps.RegenerateAsync(driver, _clock, key, key.WithNewSecret()));
        Assert.Equal(SessionLoadStatus.Corrupt, (await SessionSteps.LoadAsync(driver, _clock, key)).Status);

        // Destroying the session replaces whatever was there with a tombstone.
        await driver.DestroyAsync(key.Id, _clock.GetUtcNow(), _clock.GetUtcNow() + SessionSteps.Idle, CancellationToken.None);
        Assert.True(
            (await SessionSteps.LoadAsync(driver, _clock, key)).Status == SessionLoadStatus.Destroyed,
            $"After \"{damage}\", destroy did not leave a tombstone.");
    }

    [Fact]
    public async Task LoadAsync_CorruptSession_LogsHashOfIdNeverTheId()
    {
        var logger = new FakeLogger<RedisDriver>();
        var driver = _drivers.Create(_clock, logger);
        var key = await SessionSteps.CreateAsync(driver, _clock);
        await server.ExecuteAsync("HSET", driver.SessionKeyOf(key.Id), "ie", "soon");

        Assert.Equal(SessionLoadStatus.Corrupt, (await SessionSteps.LoadAsync(driver, _clock, key)).Status);

        var entry = Assert.Single(logger.Collector.GetSnapshot(), e => e.Id.Id == 310);
        Assert.Contains(SessionKey.Hash(key.Id), entry.Message, StringComparison.Ordinal);
        Assert.All(logger.Collector.GetSnapshot(), e => Assert.DoesNotContain(key.Id, e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task CacheOperations_DamagedEntries_ReadAsMissingAndSetRepairs()
    {
        var driver = _drivers.Create(_clock);
        var never = new CacheEntryExpiration(_clock.GetUtcNow(), null, null);
        await server.ExecuteAsync("SET", Encoding.UTF8.GetString(driver.CacheKeyOf("string")), "garbage");
        await driver.SetAsync("bad-expiry", [1], never, CancellationToken.None);
        await server.ExecuteAsync("HSET", Encoding.UTF8.GetString(driver.CacheKeyOf("bad-expiry")), "e", "tomorrow");
        await driver.SetAsync("bad-sliding", [1], never, CancellationToken.None);
        await server.ExecuteAsync("HSET", Encoding.UTF8.GetString(driver.CacheKeyOf("bad-sliding")), "sl", "-");

        foreach (var key in (string[])["string", "bad-expiry", "bad-sliding"])
        {
            Assert.Null(await driver.GetAsync(key, _clock.GetUtcNow(), CancellationToken.None));
            await driver.RefreshAsync(key, _clock.GetUtcNow(), CancellationToken.None);
            await driver.SetAsync(key, [7], never, CancellationToken.None);
            Assert.Equal([7], await driver.GetAsync(key, _clock.GetUtcNow(), CancellationToken.None));
        }
    }

    [Fact]
    public async Task SetAsync_KeysWithoutUtf8Form_NeverShareAnEntry()
    {
        var driver = _drivers.Create(_clock);
        string[] keys = ["\uD800", "\uD801", "\uDC00", "\uFFFD", "?", "a\uD800b", "a\uFFFDb", "\uDC00\uD800", "c#2NgA"];
        var never = new CacheEntryExpiration(_clock.GetUtcNow(), null, null);

        for (var i = 0; i < keys.Length; i++)
        {
            await driver.SetAsync(keys[i], [(byte)i], never, CancellationToken.None);
        }

        for (var i = 0; i < keys.Length; i++)
        {
            Assert.Equal(new[] { (byte)i }, await driver.GetAsync(keys[i], _clock.GetUtcNow(), CancellationToken.None));
        }
    }

    [Fact]
    public async Task CacheSetAsync_WithExpiry_SetsPhysicalExpiryFromCallerClock()
    {
        var driver = _drivers.Create(_clock);
        await driver.SetAsync("key", [1], new CacheEntryExpiration(_clock.GetUtcNow(), _clock.GetUtcNow() + TimeSpan.FromMinutes(5), null), CancellationToken.None);

        var ttl = (long)(await server.ExecuteAsync("PTTL", Encoding.UTF8.GetString(driver.CacheKeyOf("key"))))!;

        Assert.InRange(ttl, 290_000, 300_000);
    }

    [Fact]
    public async Task WaitForReleaseAsync_ReleasedThroughAnotherConnection_WakesWaiterWellBeforeMaxWait()
    {
        // Two drivers with their own connections stand for two application instances.
        var holder = _drivers.Create(TimeProvider.System);
        var waiter = _drivers.Create(TimeProvider.System);
        var key = await SessionSteps.CreateAsync(holder, _clock);
        var lease = (await SessionSteps.LoadAsync(holder, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
        Assert.Equal(SessionLoadStatus.LockBusy, (await SessionSteps.LoadAsync(waiter, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Status);
        await _drivers.WhenSubscribedAsync(waiter, server);

        // Woken by the release, the wait ends long before its 60 s; half of them absorbs a busy machine.
        var watch = Stopwatch.StartNew();
        var wait = waiter.WaitForReleaseAsync(key.Id, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(holder, _clock, key, new() { ["a"] = [2] }, lease, releaseLock: true));
        await wait.WaitAsync(TimeSpan.FromSeconds(120));

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"The wait took {watch.Elapsed} of its 60 s.");
        var next = await SessionSteps.LoadAsync(waiter, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration));
        Assert.Equal(SessionLoadStatus.Found, next.Status);
        Assert.Equal([2], next.Values["a"]);
        Assert.Equal(lease.Fence + 1, next.Lease!.Fence);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WaitForReleaseAsync_ConnectionWithAChannelPrefix_WakesWaiterWellBeforeMaxWait(bool applicationMultiplexer)
    {
        // Apps that share one Redis among several often give the client a channel prefix; it prefixes every channel
        // the client subscribes to, but not what a script publishes.
        var appName = $"asm-test-app-{Guid.NewGuid():N}";
        using var app = await ConnectionMultiplexer.ConnectAsync($"{server.EndPoint},channelPrefix=shop:,name={appName}");
        var holder = _drivers.Create(TimeProvider.System, configure: o => o.Configuration += ",channelPrefix=shop:");
        var waiter = _drivers.Create(TimeProvider.System, configure: o =>
        {
            if (applicationMultiplexer)
            {
                o.Configuration = null;
                o.ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(app);
            }
            else
            {
                o.Configuration += ",channelPrefix=shop:";
            }
        });
        var key = await SessionSteps.CreateAsync(holder, _clock);
        var lease = (await SessionSteps.LoadAsync(holder, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
        Assert.Equal(SessionLoadStatus.LockBusy, (await SessionSteps.LoadAsync(waiter, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Status);
        await (applicationMultiplexer ? RedisTestDrivers.WhenReleasesArriveAsync(waiter, server) : _drivers.WhenSubscribedAsync(waiter, server));

        var watch = Stopwatch.StartNew();
        var wait = waiter.WaitForReleaseAsync(key.Id, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(holder, _clock, key, new() { ["a"] = [2] }, lease, releaseLock: true));
        await wait.WaitAsync(TimeSpan.FromSeconds(120));

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"The wait took {watch.Elapsed} of its 60 s.");
        Assert.Equal("shop:" + _drivers.InstanceName + "asm:released", waiter.ReleaseChannel);
    }

    [Fact]
    public async Task WaitForReleaseAsync_AfterAnExportForAWaitingCallerWasRefused_WakesItWhenTheHolderDestroysTheSession()
    {
        // An export refused because another holds the session, for a caller that waits, waits like a request does.
        var holder = _drivers.Create(_clock);
        var waiter = _drivers.Create(_clock);
        var key = await SessionSteps.CreateAsync(holder, _clock);
        var now = _clock.GetUtcNow();
        Assert.Equal(SessionLoadStatus.Found, (await holder.ExportAsync(key.Id, SessionLease.Create(SessionSteps.LeaseDuration), now, CancellationToken.None)).Status);
        Assert.Equal(SessionLoadStatus.LockBusy, (await waiter.ExportAsync(key.Id, SessionLease.Create(SessionSteps.LeaseDuration), now, waitIfBusy: true, CancellationToken.None)).Status);
        await _drivers.WhenSubscribedAsync(waiter, server);

        var watch = Stopwatch.StartNew();
        var wait = waiter.WaitForReleaseAsync(key.Id, TimeSpan.FromSeconds(60), CancellationToken.None);
        await holder.DestroyAsync(key.Id, now, now + TimeSpan.FromMinutes(20), CancellationToken.None);
        await wait.WaitAsync(TimeSpan.FromSeconds(120));

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"The wait took {watch.Elapsed} of its 60 s.");
    }

    [Fact]
    public async Task ClaimDueEndChecksAsync_OneEndCheckSetFails_TheChecksTakenFromTheOthersAreReturnedNotLost()
    {
        var driver = _drivers.Create(_clock);
        var ids = Enumerable.Range(0, 64).Select(_ => SessionKey.New().Id).ToList();
        foreach (var id in ids)
        {
            await driver.ScheduleEndCheckAsync(id, _clock.GetUtcNow(), CancellationToken.None);
        }

        // One of the 16 sets refuses the claim, as the set of a Redis Cluster master that is down would: here its key
        // holds another type while the set is put aside, and the set comes back for the next sweep.
        var broken = driver.EndCheckKeyOf(ids[0]);
        await server.ExecuteAsync("RENAME", broken, broken + ":aside");
        await server.ExecuteAsync("SET", broken, "not a sorted set");
        var first = await driver.ClaimDueEndChecksAsync(_clock.GetUtcNow(), 1000, CancellationToken.None);
        await server.ExecuteAsync("DEL", broken);
        await server.ExecuteAsync("RENAME", broken + ":aside", broken);
        var second = await driver.ClaimDueEndChecksAsync(_clock.GetUtcNow(), 1000, CancellationToken.None);

        Assert.Equal(ids.Where(id => driver.EndCheckKeyOf(id) != broken).Order(), first.Order());
        Assert.Equal(ids.Where(id => driver.EndCheckKeyOf(id) == broken).Order(), second.Order());
    }

    [Fact]
    public async Task ClaimDueEndChecksAsync_EveryEndCheckSetFails_Throws()
    {
        var driver = _drivers.Create(_clock);
        var id = SessionKey.New().Id;
        await driver.ScheduleEndCheckAsync(id, _clock.GetUtcNow(), CancellationToken.None);
        for (var set = 0; set < 16; set++)
        {
            var key = $"{_drivers.InstanceName}e:{{{set:x}}}";
            await server.ExecuteAsync("DEL", key);
            await server.ExecuteAsync("SET", key, "not a sorted set");
        }

        await Assert.ThrowsAsync<RedisDriverException>(() => driver.ClaimDueEndChecksAsync(_clock.GetUtcNow(), 1000, CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task Operations_WithCancelledToken_ThrowOperationCanceled()
    {
        var driver = _drivers.Create(_clock);
        var key = await SessionSteps.CreateAsync(driver, _clock);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SessionSteps.LoadAsync(driver, _clock, key, cancellationToken: cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => driver.GetAsync("key", _clock.GetUtcNow(), cancelled.Token).AsTask());
    }

    public void Dispose() => _drivers.Dispose();

    private async Task<Dictionary<string, byte[]>> HashAsync(string key)
    {
        var reply = (object?[])(await server.ExecuteAsync("HGETALL", key))!;
        var fields = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        for (var i = 0; i < reply.Length; i += 2)
        {
            fields[Text((byte[])reply[i]!)] = (byte[])reply[i + 1]!;
        }

        return fields;
    }

    private static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);
}
