using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>The driver conformance suite against a three-master Redis Cluster.</summary>
[Collection(RedisClusterGroup.Name)]
public sealed class RedisClusterDriverTests(RedisCluster cluster) : StoredDriverConformanceTests
{
    private readonly RedisTestDrivers _drivers = new(cluster.Configuration);

    protected override ISessionDriver CreateDriver(TimeProvider timeProvider) => _drivers.Create(timeProvider);

    protected override IEnumerable<string> StorageNames(string sessionId, string userId) => _drivers.StorageNamesOf((RedisDriver)Sessions, sessionId, userId);

    protected override Task WhenWakeUpsArriveAsync(ISessionDriver driver) => _drivers.WhenSubscribedAsync((RedisDriver)driver, cluster.Nodes);

    /// <summary>Writes a creation time that is not a number into the session's hash, on the node that owns it.</summary>
    protected override async Task CorruptStoredSessionAsync(string sessionId)
    {
        var key = ((RedisDriver)Sessions).SessionKeyOf(sessionId);
        Assert.Equal(0L, await cluster.ExecuteOnKeyAsync(key, "HSET", key, "c", "yesterday"));
    }

    protected override async Task ReplaceLockTokenAsync(string sessionId, string token)
    {
        var key = ((RedisDriver)Sessions).SessionKeyOf(sessionId);
        Assert.Equal(0L, await cluster.ExecuteOnKeyAsync(key, "HSET", key, "lt", token));
    }

    /// <summary>Redis judges leases by its own clock, which a test cannot move: the stored lease expiry goes back instead.</summary>
    protected override async Task LetLeasesLapseAsync(SessionKey key)
    {
        var redisKey = ((RedisDriver)Sessions).SessionKeyOf(key.Id);
        Assert.Equal(0L, await cluster.ExecuteOnKeyAsync(redisKey, "HSET", redisKey, "lx", "1"));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _drivers.Dispose();
        }

        base.Dispose(disposing);
    }
}
