using System.Text;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Encryption;
using Asm.Testing.Http;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Net.Http.Headers;

namespace Asm.SessionAdapter.Tests.Identity;

/// <summary>
/// Encryption at rest against someone with write access to the storage but not the Data Protection key ring: what they
/// put in place of a stored value, profile or zombie profile opens nowhere (the encryption page's promises), on every
/// driver. What such a writer can do undetected is in <see cref="SessionIdentityTests{TDriver}"/>'s attack tests and
/// the Redis identity tests.
/// </summary>
public abstract partial class SessionIdentityTests<TDriver>
{
    [Theory]
    [InlineData("plain")]
    [InlineData("truncated")]
    [InlineData("empty")]
    [InlineData("another-key-ring")]
    public async Task EncryptAtRest_AValueReplacedAtRest_IsCorrupt_NeverServed(string replacement)
    {
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var owner = app.CreateClient(out var ownerJar);
        var id = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        var stored = (await LoadAtRestAsync(app, ownerJar)).Values["cart"];
        var forged = Encoding.UTF8.GetBytes("forged");

        if (replacement == "another-key-ring")
        {
            // Sealed in Asm's own format, under its purpose and this session's id, with a key ring that is not the app's.
            var outsider = new EncryptingSessionDriver(Storage.AtRest, new EphemeralDataProtectionProvider());
            Assert.Equal(SessionCommitStatus.Committed, await outsider.CommitAsync(WriteRequest(id, "cart", forged), CancellationToken.None));
        }
        else
        {
            // The value as an app without encryption stores it (a downgrade), the ciphertext cut by a byte, or nothing.
            await WriteAtRestAsync(id, "cart", replacement switch { "plain" => forged, "truncated" => stored[..^1], _ => [] });
        }

        var read = await owner.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, read, id, owner);
        Assert.Equal(("/probe", InvalidSessionReason.Corrupt), Assert.Single(Events.Invalid));
    }

    [Theory]
    [InlineData("another-sessions")]
    [InlineData("plain")]
    [InlineData("plain-base64")]
    public async Task EncryptAtRest_AProfileAddedAtRest_IsCorrupt_NeverAcceptedAsSeen(string profile)
    {
        // A writer who adds a profile so that a browser the session has never seen raises no OnProfileChanged.
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var alice = Browser(app, OwnerAgent, out var aliceJar);
        await alice.PostAsync("/seed/cart/alices", null);
        var mallory = Browser(app, OtherAgent, out _);
        var id = await (await mallory.PostAsync("/seed/cart/mallorys", null)).Content.ReadAsStringAsync();
        var plain = "|" + OwnerAgent;
        var added = profile switch
        {
            "another-sessions" => Assert.Single((await LoadAtRestAsync(app, aliceJar)).Profiles),
            "plain" => plain,
            _ => Convert.ToBase64String(Encoding.UTF8.GetBytes(plain)),
        };

        await WriteAtRestAsync(WriteRequest(id) with { AddProfiles = [added] });
        var read = await mallory.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, read, id, mallory);
        Assert.Equal(("/probe", InvalidSessionReason.Corrupt), Assert.Single(Events.Invalid));
        Assert.Empty(Events.ProfileChanges);
        Assert.Equal("alices", await alice.GetStringAsync("/read/cart"));
    }

    [Theory]
    [InlineData("another-sessions")]
    [InlineData("plain")]
    public async Task EncryptAtRest_AZombieProfileReplacedAtRest_IsCorrupt_NeverServedToThatProfile(string profile)
    {
        // The writer replaces Mallory's key with a zombie that carries Alice's sealed profile (or her profile in
        // plain), hoping that Alice's browser, presenting Mallory's old key, is served it as its regenerating client.
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var alice = Browser(app, OwnerAgent, out var aliceJar);
        await alice.PostAsync("/seed/cart/alices", null);
        var mallory = app.CreateClient(out var malloryJar);
        var id = await (await mallory.PostAsync("/seed/cart/mallorys", null)).Content.ReadAsStringAsync();
        var planted = Tab(app, malloryJar, OwnerAgent);
        var now = DateTimeOffset.UtcNow;

        var status = await Storage.AtRest.RegenerateAsync(
            new SessionRegenerateRequest
            {
                Key = KeyIn(app, malloryJar),
                NewSecret = SessionKey.New().Secret,
                Now = now,
                ZombieExpiresAt = now + TimeSpan.FromMinutes(10),
                Profile = profile == "plain" ? "|" + OwnerAgent : Assert.Single((await LoadAtRestAsync(app, aliceJar)).Profiles),
            },
            CancellationToken.None);
        var read = await planted.PostAsync("/probe", null);

        Assert.Equal(SessionCommitStatus.Committed, status);
        await AssertFreshSessionAsync(app, read, id, planted);
        Assert.Equal(("/probe", InvalidSessionReason.Corrupt), Assert.Single(Events.Invalid));
        Assert.Empty(Events.Zombies);
    }

    /// <summary>The session key the cookie in <paramref name="jar"/> carries.</summary>
    private protected static SessionKey KeyIn(SessionApp app, CookieJarHandler jar)
    {
        var cookie = jar.Cookies.GetCookies(Site)[CookieName]!;
        Assert.True(SessionKey.TryParse(KeyOf(app, new SetCookieHeaderValue(cookie.Name, cookie.Value)), out var key));
        return key;
    }

    /// <summary>A commit beneath the app that writes <paramref name="name"/> (when given) and nothing else.</summary>
    private static SessionCommitRequest WriteRequest(string sessionId, string? name = null, byte[]? stored = null) => new()
    {
        SessionId = sessionId,
        Now = DateTimeOffset.UtcNow,
        IdleTimeout = TimeSpan.FromMinutes(20),
        Changes = name is null
            ? new Dictionary<string, byte[]?>(StringComparer.Ordinal)
            : new Dictionary<string, byte[]?>(StringComparer.Ordinal) { [name] = stored },
    };

    /// <summary>Runs <paramref name="request"/> beneath the app, as a writer to the storage would.</summary>
    private async Task WriteAtRestAsync(SessionCommitRequest request) =>
        Assert.Equal(SessionCommitStatus.Committed, await Storage.AtRest.CommitAsync(request, CancellationToken.None));
}
