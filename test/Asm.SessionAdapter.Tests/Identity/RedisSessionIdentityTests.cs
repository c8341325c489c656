using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Identity;

public sealed class RedisSessionIdentityTests(RedisDriverFixture driver) : StoredSessionIdentityTests<RedisDriverFixture>(driver)
{
    protected override Task TamperWithStoredCiphertextAsync(string scope, string sessionId) =>
        FlipRedisValuesAsync(args => Driver.Server.ExecuteAsync(args), $"{scope}:s:{{{sessionId}}}");
}
