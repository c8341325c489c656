using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Identity;

public sealed class RedisClusterSessionIdentityTests(RedisClusterDriverFixture driver) : StoredSessionIdentityTests<RedisClusterDriverFixture>(driver)
{
    protected override Task TamperWithStoredCiphertextAsync(string scope, string sessionId)
    {
        var key = $"{scope}:s:{{{sessionId}}}";
        return FlipRedisValuesAsync(args => Driver.Cluster.ExecuteOnKeyAsync(key, args), key);
    }
}
