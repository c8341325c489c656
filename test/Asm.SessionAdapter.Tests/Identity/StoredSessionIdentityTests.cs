using System.Net;
using System.Text;
using Asm.Caching.Sessions;
using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Identity;

/// <summary>
/// Encryption at rest checked on the bytes storage really holds, and damage done to them: for the drivers that store
/// sessions as bytes (files, Redis). The in-memory driver keeps objects and runs only the round trips.
/// </summary>
public abstract class StoredSessionIdentityTests<TDriver>(TDriver driver) : SessionIdentityTests<TDriver>(driver)
    where TDriver : class, IDriverFixture, new()
{
    /// <summary>
    /// Damages the ciphertext of the encrypted values of <paramref name="sessionId"/> as stored in
    /// <paramref name="scope"/>, leaving the record around them well-formed, as an attacker with write access would.
    /// </summary>
    protected abstract Task TamperWithStoredCiphertextAsync(string scope, string sessionId);

    [Theory]
    [InlineData("expired")]
    [InlineData("other-profile")]
    public Task RefusedZombieKey_OnAnotherServer_WhileTheOwnerHoldsTheLock_IsRefusedAtOnce_NotAfterWaitingForTheOwner(string refusal) =>
        // Another server of the farm knows nothing of the owner's lock but what the storage tells it, which answers
        // "busy" before it could judge a zombie key's client.
        AssertZombieRefusedWhileTheOwnerHoldsTheLockAsync(refusal, onAnotherServer: true);

    [Fact]
    public async Task EncryptAtRest_StoredBytes_HoldNeitherTheValueNorTheUserAgentInPlaintext()
    {
        var secret = "card-4111-" + Guid.NewGuid().ToString("N");
        var agent = "AsmTest-Distinctive/" + Guid.NewGuid().ToString("N");
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var owner = Browser(app, agent, out _);

        Assert.Equal(HttpStatusCode.OK, (await owner.PostAsync($"/seed/card/{secret}", null)).StatusCode);

        var stored = await Driver.DumpAsync(Scope);
        Assert.NotEmpty(stored);
        Assert.False(Holds(stored, secret), "A value encrypted at rest is readable in storage.");
        Assert.False(Holds(stored, agent), "A client profile encrypted at rest is readable in storage.");
        Assert.Equal(secret, await owner.GetStringAsync("/read/card"));
    }

    [Fact]
    public async Task WithoutEncryption_StoredBytes_ShowTheValueInPlaintext()
    {
        // The control of the test above: the dump does reach the stored values.
        var secret = "card-4111-" + Guid.NewGuid().ToString("N");
        await using var app = await StartAsync();
        var owner = app.CreateClient();

        await owner.PostAsync($"/seed/card/{secret}", null);

        Assert.True(Holds(await Driver.DumpAsync(Scope), secret));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task CorruptStoredSession_GivesACorruptEventAndAFreshSessionNotAnError(bool encryptAtRest)
    {
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = encryptAtRest);
        var owner = app.CreateClient();
        var id = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        await Driver.CorruptSessionAsync(Scope, id);

        var read = await owner.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, read, id, owner);
        Assert.Equal(("/probe", InvalidSessionReason.Corrupt), Assert.Single(Events.Invalid));
    }

    [Fact]
    public async Task CorruptStoredSession_IsNeverDeletedByAReadOrAWritingRequest_AndIsReportedCorruptEachTime()
    {
        await using var app = await StartAsync();
        var owner = app.CreateClient(out var ownerJar);
        var id = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        await Driver.CorruptSessionAsync(Scope, id);
        var (reader, writer, later) = (Tab(app, ownerJar), Tab(app, ownerJar), Tab(app, ownerJar));

        Assert.Equal("(none)", await reader.GetStringAsync("/read/cart"));
        await AssertFreshSessionAsync(app, await writer.PostAsync("/probe", null), id, writer);
        Assert.Equal("(none)", await later.GetStringAsync("/read/cart"));

        // Had a read deleted the record, the key would now be Unknown.
        Assert.Equal(
            [("/read/cart", InvalidSessionReason.Corrupt), ("/probe", InvalidSessionReason.Corrupt), ("/read/cart", InvalidSessionReason.Corrupt)],
            Events.Invalid);
    }

    [Fact]
    public async Task EncryptAtRest_CiphertextTamperedAtRest_GivesACorruptEventAndAFreshSessionNotAnError()
    {
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var owner = app.CreateClient();
        var id = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        await TamperWithStoredCiphertextAsync(Scope, id);

        var read = await owner.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, read, id, owner);
        Assert.Equal(("/probe", InvalidSessionReason.Corrupt), Assert.Single(Events.Invalid));
    }

    [Fact]
    public async Task ClientSendingANewHugeUserAgentWithEveryLogin_LeavesOnlyTheNewestProfilesAndZombiesInStorage()
    {
        // 48 logins, each from a new 16 kB User-Agent: each is a new profile of the session and the profile of the
        // zombie its regeneration leaves. The record keeps the newest MaxProfiles (8) and 8 zombies, so what a client
        // sends cannot grow it without bound: no older User-Agent is left anywhere in storage.
        const int Logins = 48;
        await using var app = await StartAsync();
        var client = app.CreateClient(out var jar);
        var id = await (await client.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        static string Agent(int i) => $"Agent-{i:D2}/{new string('x', 16_000)}";

        for (var i = 0; i < Logins; i++)
        {
            client.DefaultRequestHeaders.Remove("User-Agent");
            client.DefaultRequestHeaders.TryAddWithoutValidation("User-Agent", Agent(i));
            Assert.Equal(id, await (await client.PostAsync("/login", null)).Content.ReadAsStringAsync());
        }

        var record = await Storage.AtRest.LoadAsync(
            new SessionLoadRequest { Key = KeyIn(app, jar), Now = DateTimeOffset.UtcNow, IdleTimeout = TimeSpan.FromMinutes(20) }, CancellationToken.None);
        Assert.Equal(Enumerable.Range(Logins - 8, 8).Select(i => "|" + Agent(i)), record.Profiles);
        var stored = await Driver.DumpAsync(Scope);
        var kept = Enumerable.Range(0, Logins).Where(i => Holds(stored, $"Agent-{i:D2}/")).ToList();
        Assert.Equal(Enumerable.Range(Logins - 8, 8), kept);
        Assert.Equal("3-items", await client.GetStringAsync("/read/cart"));
        Assert.Equal(Logins, Events.ProfileChanges.Count);
    }

    /// <summary>The header every ASP.NET Core Data Protection payload starts with.</summary>
    private protected static ReadOnlySpan<byte> ProtectedPayloadMagic => [0x09, 0xF0, 0xC9, 0xF0];

    /// <summary>
    /// Flips one byte of every Data Protection payload in <paramref name="bytes"/>, past its header and key id (so
    /// inside the encrypted part), and returns how many it damaged.
    /// </summary>
    private protected static int FlipProtectedPayloads(byte[] bytes)
    {
        const int intoCiphertext = 4 + 16 + 8;
        var flipped = 0;
        for (var at = bytes.AsSpan().IndexOf(ProtectedPayloadMagic); at >= 0 && at + intoCiphertext < bytes.Length;)
        {
            bytes[at + intoCiphertext] ^= 0xFF;
            flipped++;
            var next = bytes.AsSpan(at + 4).IndexOf(ProtectedPayloadMagic);
            at = next < 0 ? -1 : at + 4 + next;
        }

        return flipped;
    }

    /// <summary>
    /// Flips the encrypted values (<c>v:</c> fields) of the Redis hash <paramref name="key"/> in place, through
    /// <paramref name="execute"/> (a raw command on the node that holds the key).
    /// </summary>
    private protected static async Task FlipRedisValuesAsync(Func<object[], Task<object?>> execute, string key)
    {
        var fields = (object?[])(await execute(["HGETALL", key]))!;
        var flipped = 0;
        for (var i = 0; i + 1 < fields.Length; i += 2)
        {
            var name = (byte[])fields[i]!;
            var value = (byte[])fields[i + 1]!;
            if (name.AsSpan().StartsWith("v:"u8) && FlipProtectedPayloads(value) > 0)
            {
                await execute(["HSET", key, name, value]);
                flipped++;
            }
        }

        Assert.True(flipped > 0, $"No encrypted value was found in the Redis hash {key}.");
    }

    /// <summary>Whether <paramref name="text"/> appears in <paramref name="bytes"/> as UTF-8 or as UTF-16.</summary>
    private static bool Holds(byte[] bytes, string text) =>
        bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0 || bytes.AsSpan().IndexOf(Encoding.Unicode.GetBytes(text)) >= 0;
}
