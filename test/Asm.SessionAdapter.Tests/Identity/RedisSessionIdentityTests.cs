using System.Text;
using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Identity;

public sealed class RedisSessionIdentityTests(RedisDriverFixture driver) : StoredSessionIdentityTests<RedisDriverFixture>(driver)
{
    [Fact]
    public async Task EncryptAtRest_AZombieProfileRemovedAtRest_IsNotDetected_AndTheZombieServesAnyClient()
    {
        // The documented limit (docs/encryption.md): a zombie's profile is sealed on its own, and the stored layout has
        // nothing that says one was there, so a writer to the storage who removes it turns the planted key into one that
        // serves every client for the zombie window, as with profiles off.
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var victim = Browser(app, OwnerAgent, out var victimJar);
        var id = await (await victim.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        var planted = KeyIn(app, victimJar);
        var (before, after) = (Tab(app, victimJar, OtherAgent), Tab(app, victimJar, OtherAgent));
        await victim.PostAsync("/login", null);
        Assert.Equal("(none)", await before.GetStringAsync("/read/user"));

        var key = $"{Scope}:s:{{{id}}}";
        var field = "z:" + planted.Secret;
        var zombie = Encoding.UTF8.GetString((byte[])(await Driver.Server.ExecuteAsync("HGET", key, field))!);
        var parts = zombie.Split(':');
        Assert.Equal(3, parts.Length);
        await Driver.Server.ExecuteAsync("HSET", key, field, parts[0] + ":" + parts[1]);

        Assert.Equal("alice", await after.GetStringAsync("/read/user"));
        Assert.Equal([("/read/user", InvalidSessionReason.ZombieProfileMismatch)], Events.Invalid);
        Assert.Equal(["/read/user"], Events.Zombies);
    }

    protected override Task TamperWithStoredCiphertextAsync(string scope, string sessionId) =>
        FlipRedisValuesAsync(args => Driver.Server.ExecuteAsync(args), $"{scope}:s:{{{sessionId}}}");
}
