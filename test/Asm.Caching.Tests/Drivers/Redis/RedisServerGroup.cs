using Asm.Testing.Redis;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>The tests that share one standalone <c>redis-server</c>, started once for the test assembly.</summary>
[CollectionDefinition(Name)]
public sealed class RedisServerGroup : ICollectionFixture<RedisServer>
{
    public const string Name = "Redis";
}
