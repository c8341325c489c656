using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>The driver conformance suite against a standalone Redis.</summary>
[Collection(RedisServerGroup.Name)]
public sealed class RedisDriverTests(RedisServer server) : StoredDriverConformanceTests
{
    private readonly RedisTestDrivers _drivers = new(server.EndPoint);

    protected override ISessionDriver CreateDriver(TimeProvider timeProvider) => _drivers.Create(timeProvider);

    protected override IEnumerable<string> StorageNames(string sessionId, string userId) => _drivers.StorageNamesOf((RedisDriver)Sessions, sessionId, userId);

    protected override Task WhenWakeUpsArriveAsync(ISessionDriver driver) => _drivers.WhenSubscribedAsync((RedisDriver)driver, server);

    /// <summary>Writes a creation time that is not a number into the session's hash.</summary>
    protected override async Task CorruptStoredSessionAsync(string sessionId) =>
        Assert.Equal(0L, await server.ExecuteAsync("HSET", ((RedisDriver)Sessions).SessionKeyOf(sessionId), "c", "yesterday"));

    [Fact]
    public async Task LoadAsync_FromAServerWhoseClockIsFortySecondsAhead_FindsTheLeaseStillHeld()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var holder = (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;

        // The same instant on a server whose clock runs 40 s ahead: past the lease by that server's reckoning.
        Clock.Advance(TimeSpan.FromSeconds(40));
        var other = await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)));

        Assert.Equal(SessionLoadStatus.LockBusy, other.Status);
        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(key, new() { ["a"] = [2] }, holder, releaseLock: true));
    }

    [Fact]
    public async Task RenewLockAsync_FromAServerWhoseClockIsFortySecondsBehind_ExtendsTheLeaseByRedisTime()
    {
        var key = await CreateSessionAsync();
        Clock.Advance(TimeSpan.FromSeconds(40));
        var holder = (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;

        // The holder's server runs 40 s behind the other one: its renewal must not date the lease in the past.
        var behind = Clock.GetUtcNow() - TimeSpan.FromSeconds(40);
        Assert.True(await Sessions.RenewLockAsync(key.Id, holder, behind, Token));

        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Status);
    }

    protected override async Task ReplaceLockTokenAsync(string sessionId, string token) =>
        Assert.Equal(0L, await server.ExecuteAsync("HSET", ((RedisDriver)Sessions).SessionKeyOf(sessionId), "lt", token));

    /// <summary>Redis judges leases by its own clock, which a test cannot move: the stored lease expiry goes back instead.</summary>
    protected override async Task LetLeasesLapseAsync(SessionKey key) =>
        Assert.Equal(0L, await server.ExecuteAsync("HSET", ((RedisDriver)Sessions).SessionKeyOf(key.Id), "lx", "1"));

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _drivers.Dispose();
        }

        base.Dispose(disposing);
    }
}
