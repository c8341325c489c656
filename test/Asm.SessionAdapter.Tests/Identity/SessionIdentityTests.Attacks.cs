using System.Net;
using Asm.Caching.Sessions;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Asm.SessionAdapter.Tests.Identity;

/// <summary>
/// Attacks on session identity through real requests: what a replaced (zombie) key can and cannot do, a planted key
/// presented with a forged <c>X-Forwarded-For</c>, and encrypted values moved around by someone with write access to
/// the storage.
/// </summary>
public abstract partial class SessionIdentityTests<TDriver>
{
    /// <summary>A test-only header that stands for the address the connection comes from (TestServer has none).</summary>
    private const string PeerHeader = "X-Test-Peer";

    // ---- What a zombie key can do ----

    [Fact]
    public async Task ZombieKey_CannotRegenerateOrBindAUser_SoItIsNeverHandedTheCurrentKey()
    {
        await using var app = await StartAsync(a =>
        {
            a.MapPost("/regenerate", async (HttpContext c) => { return await RefusedAsync(c, () => c.Session.RegenerateIdAsync()); });
            a.MapPost("/bind", async (HttpContext c) => { return await RefusedAsync(c, () => c.Session.BindUserAsync("mallory")); });
        });
        var login = app.CreateClient(out var loginJar);
        await login.PostAsync("/seed/cart/3-items", null);
        var oldTab = Tab(app, loginJar);
        await login.PostAsync("/login", null);

        var regenerate = await oldTab.PostAsync("/regenerate", null);
        var bind = await oldTab.PostAsync("/bind", null);

        Assert.Equal(HttpStatusCode.OK, regenerate.StatusCode);
        Assert.Contains("zombie", await regenerate.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Contains("zombie", await bind.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Empty(SessionCookiesOf(regenerate));
        Assert.Empty(SessionCookiesOf(bind));
        Assert.Equal(["/regenerate", "/bind"], Events.Zombies);

        // The login's key is still the current one (neither attempt replaced it), and the session is bound to no one.
        Assert.Equal("alice", await login.GetStringAsync("/read/user"));
        Assert.Equal(2, Events.Zombies.Count);
        Assert.Empty(Events.Invalid);
    }

    [Theory]
    [InlineData("current")]
    [InlineData("zombie")]
    public async Task DestroyAfterALogin_ByTheCurrentOrTheZombieKey_RefusesTheOtherKeyAsDestroyed(string destroyer)
    {
        // The owner logs out, or a tab that missed the login does: either way nothing of the session survives.
        await using var app = await StartAsync();
        var login = app.CreateClient(out var loginJar);
        var id = await (await login.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        var oldTab = Tab(app, loginJar);
        await login.PostAsync("/login", null);
        Assert.Equal("3-items", await oldTab.GetStringAsync("/read/cart"));
        var (destroying, other) = destroyer == "current" ? (login, oldTab) : (oldTab, login);

        var destroyed = await destroying.PostAsync("/destroy", null);
        var after = await other.PostAsync("/probe", null);

        Assert.Equal(HttpStatusCode.OK, destroyed.StatusCode);
        Assert.True(SessionCookieOf(destroyed).Expires < DateTimeOffset.UtcNow);
        await AssertFreshSessionAsync(app, after, id, other);
        Assert.Equal(("/probe", InvalidSessionReason.Destroyed), Assert.Single(Events.Invalid));
    }

    [Theory]
    [InlineData("expired")]
    [InlineData("other-profile")]
    public Task RefusedZombieKey_WhileTheOwnerHoldsTheLock_IsRefusedAtOnce_NotAfterWaitingForTheOwner(string refusal) =>
        // A key that opens nothing must be told so at once, as a request on another server is, not after queueing
        // behind the owner's request (its wait would say that the owner is busy right now, and end in a lock timeout).
        AssertZombieRefusedWhileTheOwnerHoldsTheLockAsync(refusal, onAnotherServer: false);

    /// <summary>
    /// The owner holds the session's lock after its login; its pre-login cookie, sent from another client (or with
    /// <paramref name="refusal"/> "expired", after the window), to this server or <paramref name="onAnotherServer"/>,
    /// is refused at once while the owner still holds the lock.
    /// </summary>
    private protected async Task AssertZombieRefusedWhileTheOwnerHoldsTheLockAsync(string refusal, bool onAnotherServer)
    {
        var held = Gate();
        var release = Gate();
        void Configure(AsmSessionOptions o)
        {
            o.LockWaitTimeout = TimeSpan.FromMinutes(5);
            o.ZombieLifetime = refusal == "expired" ? TimeSpan.Zero : TimeSpan.FromMinutes(5);
        }

        await using var app = await StartAsync(
            a => a.MapPost("/hold", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                held.SetResult();
                await release.Task;
                return "held";
            }),
            Configure);
        await using var otherServer = onAnotherServer
            ? await StartAsync(configure: Configure, services: s => SessionApp.ShareDataProtection(s, app.Services))
            : null;
        var server = otherServer ?? app;
        var owner = Browser(app, OwnerAgent, out var ownerJar);
        var id = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        var attacker = Tab(server, ownerJar, OtherAgent);
        await owner.PostAsync("/login", null);

        var holding = owner.PostAsync("/hold", null);
        await Within(held.Task);
        try
        {
            var refused = await Within(attacker.PostAsync("/probe", null));

            await AssertFreshSessionAsync(server, refused, id, attacker);
            var reason = refusal == "expired" ? InvalidSessionReason.ZombieExpired : InvalidSessionReason.ZombieProfileMismatch;
            Assert.Equal(("/probe", reason), Assert.Single(Events.Invalid));
            Assert.False(holding.IsCompleted);
        }
        finally
        {
            release.TrySetResult();
        }

        Assert.Equal("held", await (await Within(holding)).Content.ReadAsStringAsync());
        Assert.Equal("alice", await owner.GetStringAsync("/read/user"));
    }

    [Fact]
    public async Task ProfileProvider_ReturningAnEmptyProfile_IsNoProfile_SoAZombieKeyIsJudgedAlikeOnEveryDriver()
    {
        // The provider the profiles page shows (the User-Agent alone) gives "" to a client that sends none. Redis keeps
        // no empty profile beside a zombie secret, so "" must mean what null means on every driver, encrypted or not:
        // before, the in-memory and filesystem drivers (and Redis with encryption) refused the zombie to any other
        // profile and Redis served it, raising a profile change from "".
        await using var app = await StartAsync(configure: o => o.ProfileProvider = c => c.Request.Headers.UserAgent.ToString());
        var owner = app.CreateClient(out var ownerJar);
        await owner.PostAsync("/seed/cart/3-items", null);
        var oldTab = Tab(app, ownerJar, OtherAgent);
        await owner.PostAsync("/login", null);

        Assert.Equal("alice", await oldTab.GetStringAsync("/read/user"));
        Assert.Equal(["/read/user"], Events.Zombies);
        Assert.Empty(Events.Invalid);
        Assert.Empty(Events.ProfileChanges);
    }

    // ---- Names from the request ----

    [Theory]
    [InlineData("lone-surrogate")]
    [InlineData("too-long")]
    public async Task Remove_OfANameNoValueCanHave_RemovesNothingAndTheRequestsWritesAreStored(string shape)
    {
        // An app removing what a request names: a name no value can have (Set refuses it) has nothing to remove.
        var name = shape == "lone-surrogate" ? "cart\uD800" : new string('n', 70_000);
        await using var app = await StartAsync(a => a.MapPost("/set-and-remove", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("cart", "2-items");
            c.Session.Remove(name);
            return c.Session.GetString("cart");
        }));
        var owner = app.CreateClient();
        await owner.PostAsync("/seed/user/alice", null);

        var response = await owner.PostAsync("/set-and-remove", null);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("2-items", await owner.GetStringAsync("/read/cart"));
        Assert.Equal("cart,user", await owner.GetStringAsync("/keys"));
    }

    [Fact]
    public async Task MaxSessionSize_CountsTheNames_SoEmptyValuesUnderRequestChosenNamesCannotGrowASessionWithoutBound()
    {
        // An app that marks what a request names ("seen:<item>") with an empty value: the names are what is stored.
        await using var app = await StartAsync(
            a => a.MapPost("/mark/{item}", async (HttpContext c, string item) =>
            {
                await c.Session.LoadAsync();
                try
                {
                    c.Session.Set("seen:" + item, []);
                    return "set";
                }
                catch (InvalidOperationException ex)
                {
                    return ex.Message;
                }
            }),
            o => o.MaxSessionSize = 4096);
        var client = app.CreateClient();

        var answers = new List<string>();
        for (var i = 0; i < 12; i++)
        {
            answers.Add(await (await client.PostAsync($"/mark/{i:D2}{new string('x', 500)}", null)).Content.ReadAsStringAsync());
        }

        // Names of 507 bytes: 8 fit in 4,096 bytes, the 9th and every later one do not.
        Assert.All(answers.Take(8), a => Assert.Equal("set", a));
        Assert.All(answers.Skip(8), a => Assert.Contains("AsmSessionOptions.MaxSessionSize", a, StringComparison.Ordinal));
        Assert.Equal(8, (await client.GetStringAsync("/keys")).Split(',').Length);
    }

    // ---- Event handlers that refuse by throwing ----

    [Theory]
    [InlineData("profile")]
    [InlineData("zombie")]
    public async Task HandlerThatThrows_AndAnAppThatCatchesIt_LeavesTheRequestAFreshSession_NeverTheRefusedOne(string refusal)
    {
        // A handler throws to refuse; the app's code catches it (a filter rendering an error page that reads the
        // session, a try around LoadAsync) and goes on using the session: it must not be the one that was refused.
        await using var app = await StartAsync(
            a => a.MapPost("/probe-caught", async (HttpContext c) =>
            {
                var refused = "";
                try
                {
                    await c.Session.LoadAsync();
                }
                catch (UnauthorizedAccessException)
                {
                    refused = "refused|";
                }

                var cart = c.Session.GetString("cart") ?? "(none)";
                c.Session.SetString("visitor", "here");
                return refused + cart;
            }),
            o =>
            {
                o.Events.OnProfileChanged = _ => throw new UnauthorizedAccessException("A new browser: sign in again.");
                o.Events.OnZombieKeyAccessed = _ => throw new UnauthorizedAccessException("An old key: sign in again.");
            });
        var owner = Browser(app, OwnerAgent, out var ownerJar);
        await owner.PostAsync("/seed/cart/3-items", null);
        var other = Tab(app, ownerJar, refusal == "profile" ? OtherAgent : OwnerAgent);
        if (refusal == "zombie")
        {
            await owner.PostAsync("/login", null);
        }

        var caught = await Within(other.PostAsync("/probe-caught", null));

        Assert.Equal("refused|(none)", await caught.Content.ReadAsStringAsync());
        Assert.Equal(refusal == "zombie" ? "cart,user" : "cart", await owner.GetStringAsync("/keys"));
        Assert.Equal(HttpStatusCode.OK, (await Within(owner.PostAsync("/seed/more/1", null))).StatusCode);
    }

    // ---- Profiles: the address is the connection's, never a header's ----

    [Fact]
    public async Task PlantedKey_PresentedWithTheVictimsUserAgentAndAForgedXForwardedFor_IsRefusedToTheAttacker()
    {
        await using var app = await StartAsync(a => a.Use((c, next) =>
        {
            // What a server's transport reports; the app has no forwarded-headers middleware.
            c.Connection.RemoteIpAddress = IPAddress.Parse(c.Request.Headers[PeerHeader].ToString());
            return next(c);
        }));
        var attacker = Browser(app, "Victim/1.0", out var attackerJar);
        attacker.DefaultRequestHeaders.Add(PeerHeader, "198.51.100.9");
        var id = await (await attacker.PostAsync("/seed/cart/planted", null)).Content.ReadAsStringAsync();
        var victim = Tab(app, attackerJar, "Victim/1.0");
        victim.DefaultRequestHeaders.Add(PeerHeader, "203.0.113.7");
        var victimsOtherTab = Tab(app, attackerJar, "Victim/1.0");
        victimsOtherTab.DefaultRequestHeaders.Add(PeerHeader, "203.0.113.7");
        await victim.PostAsync("/login", null);
        attacker.DefaultRequestHeaders.Add("X-Forwarded-For", "203.0.113.7");
        attacker.DefaultRequestHeaders.Add("X-Real-IP", "203.0.113.7");
        attacker.DefaultRequestHeaders.Add("Forwarded", "for=203.0.113.7");

        var stolen = await attacker.PostAsync("/probe", null);
        var stale = await victimsOtherTab.GetAsync("/read/user");

        await AssertFreshSessionAsync(app, stolen, id, attacker);
        Assert.Equal(("/probe", InvalidSessionReason.ZombieProfileMismatch), Assert.Single(Events.Invalid));

        // The control: the victim's own stale tab, from the victim's address, is served through the same old key.
        Assert.Equal("alice", await stale.Content.ReadAsStringAsync());
        Assert.Equal(["/read/user"], Events.Zombies);
    }

    // ---- Encryption at rest: stored values moved by someone with write access to the storage ----

    [Fact]
    public async Task EncryptAtRest_AValueCopiedFromAnotherSession_IsCorrupt_NeverTheOtherSessionsValue()
    {
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var alice = app.CreateClient(out var aliceJar);
        await alice.PostAsync("/seed/cart/alices-card", null);
        var mallory = app.CreateClient(out _);
        var malloryId = await (await mallory.PostAsync("/seed/cart/mallorys-cart", null)).Content.ReadAsStringAsync();

        await WriteAtRestAsync(malloryId, "cart", (await LoadAtRestAsync(app, aliceJar)).Values["cart"]);
        var read = await mallory.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, read, malloryId, mallory);
        Assert.Equal(("/probe", InvalidSessionReason.Corrupt), Assert.Single(Events.Invalid));
        Assert.Equal("alices-card", await alice.GetStringAsync("/read/cart"));
    }

    [Fact]
    public async Task EncryptAtRest_AValueCopiedToAnotherNameOfItsSession_IsCorrupt()
    {
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var owner = app.CreateClient(out var ownerJar);
        var id = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        await owner.PostAsync("/seed/role/guest", null);

        await WriteAtRestAsync(id, "role", (await LoadAtRestAsync(app, ownerJar)).Values["cart"]);
        var read = await owner.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, read, id, owner);
        Assert.Equal(("/probe", InvalidSessionReason.Corrupt), Assert.Single(Events.Invalid));
    }

    [Fact]
    public async Task EncryptAtRest_AnOlderValueWrittenBackUnderItsOwnName_IsNotDetected()
    {
        // The documented limit: each value is authenticated with its name and session, not with its version.
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var owner = app.CreateClient(out var ownerJar);
        var id = await (await owner.PostAsync("/seed/role/admin", null)).Content.ReadAsStringAsync();
        var older = (await LoadAtRestAsync(app, ownerJar)).Values["role"];
        await owner.PostAsync("/seed/role/guest", null);

        await WriteAtRestAsync(id, "role", older);

        Assert.Equal("admin", await owner.GetStringAsync("/read/role"));
        Assert.Empty(Events.Invalid);
    }

    /// <summary>Runs <paramref name="attempt"/> on the loaded session; the message of the <see cref="InvalidOperationException"/> it throws, if any.</summary>
    private static async Task<string> RefusedAsync(HttpContext context, Func<Task> attempt)
    {
        await context.Session.LoadAsync();
        try
        {
            await attempt();
            return "done";
        }
        catch (InvalidOperationException ex)
        {
            return "refused: " + ex.Message;
        }
    }

    /// <summary>The session the cookie in <paramref name="jar"/> opens, as the storage holds it (values encrypted, if they are).</summary>
    private async Task<SessionLoadResult> LoadAtRestAsync(SessionApp app, CookieJarHandler jar)
    {
        var result = await Storage.AtRest.LoadAsync(
            new SessionLoadRequest { Key = KeyIn(app, jar), Now = DateTimeOffset.UtcNow, IdleTimeout = TimeSpan.FromMinutes(20) }, CancellationToken.None);
        Assert.Equal(SessionLoadStatus.Found, result.Status);
        return result;
    }

    /// <summary>Stores <paramref name="stored"/> as value <paramref name="name"/> of session <paramref name="sessionId"/>, beneath the app.</summary>
    private Task WriteAtRestAsync(string sessionId, string name, byte[] stored) => WriteAtRestAsync(WriteRequest(sessionId, name, stored));
}
