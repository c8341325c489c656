using Asm.Testing.Redis;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>The tests that share one three-master Redis Cluster, started once for the test assembly.</summary>
[CollectionDefinition(Name)]
public sealed class RedisClusterGroup : ICollectionFixture<RedisCluster>
{
    public const string Name = "Redis Cluster";
}
