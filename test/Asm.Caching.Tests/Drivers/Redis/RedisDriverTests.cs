using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>The driver conformance suite against a standalone Redis.</summary>
[Collection(RedisServerGroup.Name)]
public sealed class RedisDriverTests(RedisServer server) : DriverConformanceTests
{
    private readonly RedisTestDrivers _drivers = new(server.EndPoint);

    protected override ISessionDriver CreateDriver(TimeProvider timeProvider) => _drivers.Create(timeProvider);

    /// <summary>Writes a creation time that is not a number into the session's hash.</summary>
    protected override async Task CorruptStoredSessionAsync(string sessionId) =>
        Assert.Equal(0L, await server.ExecuteAsync("HSET", ((RedisDriver)Sessions).SessionKeyOf(sessionId), "c", "yesterday"));

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _drivers.Dispose();
        }

        base.Dispose(disposing);
    }
}
