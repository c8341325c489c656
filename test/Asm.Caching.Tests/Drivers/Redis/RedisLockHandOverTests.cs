using System.Globalization;
using System.Text;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using Microsoft.Extensions.Time.Testing;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// A lock's waiting line across drivers (one party per driver, so one per app): a release keeps the lock for the
/// party first in line for 200 ms, whatever load another party sent right behind the release. Leases are judged on the
/// test's fake clock (<see cref="RedisDriver.LeasesOnCallerClock"/>), so the 200 ms are stepped, not waited for. On a
/// server of the class's own, whose command counts no other test's traffic reaches.
/// </summary>
public sealed class RedisLockHandOverTests : IAsyncLifetime
{
    private static readonly Dictionary<string, byte[]?> NoChanges = [];

    private readonly RedisServer _server = new();
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private RedisTestDrivers _drivers = null!;
    private RedisDriver _a = null!;
    private RedisDriver _b = null!;

    public async Task InitializeAsync()
    {
        await _server.StartAsync();
        _drivers = new RedisTestDrivers(_server.EndPoint);
        _a = _drivers.Create(_clock);
        _b = _drivers.Create(_clock);
        _a.LeasesOnCallerClock = _b.LeasesOnCallerClock = true;
    }

    public Task DisposeAsync()
    {
        _drivers.Dispose();
        _server.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Release_WithAnotherPartyInLine_KeepsTheLockForIt_AgainstTheReleasingPartysNextLoad_ForTwoHundredMs()
    {
        var key = await SessionSteps.CreateAsync(_a, _clock);
        var held = await LockAsync(_a, key);
        Assert.Equal(SessionLoadStatus.LockBusy, (await TryLockAsync(_b, key)).Status);

        var published = await PublishesAsync(() => SessionSteps.CommitAsync(_a, _clock, key, NoChanges, held, releaseLock: true));

        Assert.Equal(1, published);
        Assert.Equal("~" + _b.Party, await _server.ExecuteTextAsync("HGET", SessionKey(key), "lt"));
        _clock.Advance(TimeSpan.FromMilliseconds(199));
        Assert.Equal(SessionLoadStatus.LockBusy, (await TryLockAsync(_a, key)).Status);
        Assert.Equal(SessionLoadStatus.LockBusy, (await _a.ExportAsync(key.Id, Lease(), _clock.GetUtcNow(), CancellationToken.None)).Status);
        var handedOver = await LockAsync(_b, key);

        // Held by the served party's lease now; its release serves the other party, which queued when refused above.
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(_b, _clock, key, NoChanges, handedOver, releaseLock: true));
        Assert.Equal("~" + _a.Party, await _server.ExecuteTextAsync("HGET", SessionKey(key), "lt"));
        Assert.Equal(SessionLoadStatus.LockBusy, (await TryLockAsync(_b, key)).Status);
        await LockAsync(_a, key);
    }

    [Fact]
    public async Task KeptLock_WhoseTwoHundredMsPassUntaken_IsFreeToAnyParty()
    {
        var key = await SessionSteps.CreateAsync(_a, _clock);
        var held = await LockAsync(_a, key);
        Assert.Equal(SessionLoadStatus.LockBusy, (await TryLockAsync(_b, key)).Status);
        await _a.ReleaseLockAsync(key.Id, held, CancellationToken.None);

        // Party B's request gave up (its app is gone): nobody takes the lock kept for it.
        _clock.Advance(TimeSpan.FromMilliseconds(200));

        await LockAsync(_a, key);
        Assert.Equal(0L, await _server.ExecuteAsync("EXISTS", WaitingLine(key)));
    }

    [Fact]
    public async Task WaitingLine_KeepsEachPartyOnce_InTheOrderFirstRefused_AndAsLongAsTheLastRefusedLease()
    {
        var key = await SessionSteps.CreateAsync(_a, _clock);
        var c = _drivers.Create(_clock);
        c.LeasesOnCallerClock = true;
        var held = await LockAsync(_a, key);

        Assert.Equal(SessionLoadStatus.LockBusy, (await TryLockAsync(_b, key)).Status);
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(SessionLoadStatus.LockBusy, (await TryLockAsync(c, key)).Status);
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(SessionLoadStatus.LockBusy, (await TryLockAsync(_b, key, TimeSpan.FromSeconds(90))).Status);

        Assert.Equal([_b.Party, c.Party], await LineAsync(key));
        Assert.InRange(Convert.ToInt64(await _server.ExecuteAsync("PTTL", WaitingLine(key)), CultureInfo.InvariantCulture), 60_001, 90_000);

        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(_a, _clock, key, NoChanges, held, releaseLock: true));
        Assert.Equal("~" + _b.Party, await _server.ExecuteTextAsync("HGET", SessionKey(key), "lt"));
        Assert.Equal([c.Party], await LineAsync(key));
    }

    [Fact]
    public async Task Export_RefusedForACallerThatSkipsALockedSession_JoinsNoLine_SoTheReleaseKeepsTheLockForNobody()
    {
        var key = await SessionSteps.CreateAsync(_a, _clock);
        var held = await LockAsync(_a, key);

        // A background mover skips a locked session: it never comes back for this lock.
        Assert.Equal(SessionLoadStatus.LockBusy, (await _b.ExportAsync(key.Id, Lease(), _clock.GetUtcNow(), waitIfBusy: false, CancellationToken.None)).Status);
        var published = await PublishesAsync(() => SessionSteps.CommitAsync(_a, _clock, key, NoChanges, held, releaseLock: true));

        Assert.Equal(0, published);
        Assert.Null(await _server.ExecuteTextAsync("HGET", SessionKey(key), "lt"));
        Assert.Equal(SessionLoadStatus.Found, (await _a.ExportAsync(key.Id, Lease(), _clock.GetUtcNow(), CancellationToken.None)).Status);
    }

    [Fact]
    public async Task PartyInLine_TakingALeaseThatRanOut_LeavesTheLine_SoNoLaterReleaseKeepsTheLockForIt()
    {
        var key = await SessionSteps.CreateAsync(_a, _clock);
        await LockAsync(_a, key);
        Assert.Equal(SessionLoadStatus.LockBusy, (await TryLockAsync(_b, key)).Status);

        // The holder's app died: its lease runs out unreleased, and the waiting party takes the lock.
        _clock.Advance(SessionSteps.LeaseDuration);
        var taken = await LockAsync(_b, key);

        Assert.Equal(0L, await _server.ExecuteAsync("EXISTS", WaitingLine(key)));
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(_b, _clock, key, NoChanges, taken, releaseLock: true));
        Assert.Null(await _server.ExecuteTextAsync("HGET", SessionKey(key), "lt"));
    }

    [Fact]
    public async Task OlderVersionsMark_ARefusedLoadLeavesIt_AndTheReleaseTakesItOffPublishesAndKeepsTheLockForNobody()
    {
        var key = await SessionSteps.CreateAsync(_a, _clock);
        var held = await LockAsync(_a, key);
        await _server.ExecuteAsync("SET", WaitingLine(key), "1", "PX", "30000");
        Assert.Equal(SessionLoadStatus.LockBusy, (await TryLockAsync(_b, key)).Status);
        Assert.Equal("string", await _server.ExecuteTextAsync("TYPE", WaitingLine(key)));

        var published = await PublishesAsync(async () =>
        {
            await _a.ReleaseLockAsync(key.Id, held, CancellationToken.None);
            return true;
        });

        Assert.Equal(1, published);
        Assert.Equal(0L, await _server.ExecuteAsync("EXISTS", WaitingLine(key)));
        await LockAsync(_b, key);
    }

    [Fact]
    public async Task Destroy_WithAPartyInLine_TakesTheLineOff_AndPublishes()
    {
        var key = await SessionSteps.CreateAsync(_a, _clock);
        await LockAsync(_a, key);
        Assert.Equal(SessionLoadStatus.LockBusy, (await TryLockAsync(_b, key)).Status);
        var now = _clock.GetUtcNow();

        var published = await PublishesAsync(async () =>
        {
            await _a.DestroyAsync(key.Id, now, now + SessionSteps.Idle, CancellationToken.None);
            return true;
        });

        Assert.Equal(1, published);
        Assert.Equal(0L, await _server.ExecuteAsync("EXISTS", WaitingLine(key)));
        Assert.Equal(SessionLoadStatus.Destroyed, (await TryLockAsync(_b, key)).Status);
    }

    private static SessionLease Lease(TimeSpan? duration = null) => SessionLease.Create(duration ?? SessionSteps.LeaseDuration);

    private Task<SessionLoadResult> TryLockAsync(RedisDriver driver, SessionKey key, TimeSpan? duration = null) =>
        SessionSteps.LoadAsync(driver, _clock, key, Lease(duration));

    private async Task<SessionLease> LockAsync(RedisDriver driver, SessionKey key)
    {
        var result = await TryLockAsync(driver, key);
        Assert.Equal(SessionLoadStatus.Found, result.Status);
        return result.Lease!;
    }

    private string SessionKey(SessionKey key) => _drivers.InstanceName + "s:{" + key.Id + "}";

    private string WaitingLine(SessionKey key) => _drivers.InstanceName + "w:{" + key.Id + "}";

    private async Task<string[]> LineAsync(SessionKey key) =>
        [.. ((object?[])(await _server.ExecuteAsync("ZRANGE", WaitingLine(key), "0", "-1"))!).Select(party => Encoding.UTF8.GetString((byte[])party!))];

    /// <summary>How many messages Redis published while <paramref name="operation"/> ran.</summary>
    private async Task<long> PublishesAsync<T>(Func<Task<T>> operation)
    {
        var before = await _server.GetCommandStatsAsync();
        await operation();
        return (await _server.GetCommandStatsAsync()).Since(before)["publish"];
    }
}
