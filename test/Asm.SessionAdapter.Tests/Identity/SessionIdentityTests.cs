using System.Net;
using System.Text;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Microsoft.Net.Http.Headers;

namespace Asm.SessionAdapter.Tests.Identity;

/// <summary>
/// Session identity and defence, end to end through the stock <c>app.UseSession()</c>, on every driver: ID
/// regeneration with zombie keys for tabs still holding the old cookie, client profiles, destroy, and encryption at
/// rest. Concurrent requests are ordered by gates inside the endpoints and by what storage told them, never by sleeps.
/// </summary>
public abstract partial class SessionIdentityTests<TDriver>(TDriver driver) : IClassFixture<TDriver>
    where TDriver : class, IDriverFixture, new()
{
    private protected const string CookieName = AsmSessionOptions.DefaultCookieName;
    private protected const string OwnerAgent = "AsmTest-Owner/1.0 (the browser that logged in)";
    private protected const string OtherAgent = "AsmTest-Other/2.0 (a browser the session has never seen)";
    private static readonly Uri Site = new("http://localhost/");
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    protected TDriver Driver { get; } = driver;

    /// <summary>The storage of this test alone.</summary>
    protected string Scope { get; } = Guid.NewGuid().ToString("N");

    private protected RecordingSessionEvents Events { get; } = new();

    private protected ChaosSessionDriver Storage { get; private set; } = null!;

    // ---- Regeneration: tabs that still hold the old cookie ----

    [Theory]
    [InlineData(SessionLockMode.Lockless)]
    [InlineData(SessionLockMode.LockOnWrite)]
    public async Task RegenerateIdAsync_WhileTwoOldCookieTabsAreInFlight_AllThreeSucceedAndEveryWriteSurvives(SessionLockMode tabMode)
    {
        var arrived = new Dictionary<string, TaskCompletionSource> { ["b"] = Gate(), ["c"] = Gate() };
        var proceed = Gate();
        await using var app = await StartAsync(a => a.MapPost("/tab/{name}", async (HttpContext c, string name) =>
        {
            // The slow tab is already running when the login regenerates; it touches its session only afterwards.
            arrived[name].SetResult();
            await proceed.Task;
            await c.Session.LoadAsync();
            c.Session.SetString(name, "written by tab " + name);
            return c.Session.GetString("user") ?? "(anonymous)";
        }).WithSessionLock(tabMode));
        var login = app.CreateClient(out var loginJar);
        var oldKey = KeyOf(app, SessionCookieOf(await login.PostAsync("/seed/cart/3-items", null)));
        var tabB = Tab(app, loginJar);
        var tabC = Tab(app, loginJar);

        var b = tabB.PostAsync("/tab/b", null);
        var c = tabC.PostAsync("/tab/c", null);
        await Within(Task.WhenAll(arrived["b"].Task, arrived["c"].Task));
        var loggedIn = await Within(login.PostAsync("/login", null));
        proceed.SetResult();
        var (responseB, responseC) = (await Within(b), await Within(c));

        Assert.Equal(HttpStatusCode.OK, loggedIn.StatusCode);
        Assert.Equal(HttpStatusCode.OK, responseB.StatusCode);
        Assert.Equal(HttpStatusCode.OK, responseC.StatusCode);
        Assert.Equal("alice", await responseB.Content.ReadAsStringAsync());
        Assert.Equal("alice", await responseC.Content.ReadAsStringAsync());
        var newKey = KeyOf(app, SessionCookieOf(loggedIn));
        Assert.NotEqual(oldKey, newKey);
        // A zombie request is served the session but never handed the current key.
        Assert.Empty(SessionCookiesOf(responseB));
        Assert.Empty(SessionCookiesOf(responseC));
        Assert.Equal(["/tab/b", "/tab/c"], Events.Zombies.Order(StringComparer.Ordinal));
        Assert.Empty(Events.Invalid);
        Assert.Equal("b,c,cart,user", await login.GetStringAsync("/keys"));
        Assert.Equal("b,c,cart,user", await tabB.GetStringAsync("/keys"));
        Assert.Equal("b,c,cart,user", await tabC.GetStringAsync("/keys"));

        // The tabs were handed no new key, so their reads are zombie hits too (inside the window, same profile).
        Assert.Equal(4, Events.Zombies.Count);
    }

    [Theory]
    [InlineData(SessionLockMode.Lockless)]
    [InlineData(SessionLockMode.LockOnWrite)]
    public async Task RegenerateIdAsync_TabsThatLoadedBeforeIt_StillCommitTheirWritesAndSendNoStaleCookie(SessionLockMode tabMode)
    {
        var loaded = new Dictionary<string, TaskCompletionSource> { ["b"] = Gate(), ["c"] = Gate() };
        var proceed = Gate();
        await using var app = await StartAsync(a => a.MapPost("/tab/{name}", async (HttpContext c, string name) =>
        {
            // The slow tab read its session with the key that is current now, and writes after the login replaced it.
            await c.Session.LoadAsync();
            loaded[name].SetResult();
            await proceed.Task;
            c.Session.SetString(name, "written by tab " + name);
            return "ok";
        }).WithSessionLock(tabMode));
        var login = app.CreateClient(out var loginJar);
        await login.PostAsync("/seed/cart/3-items", null);
        var tabB = Tab(app, loginJar);
        var tabC = Tab(app, loginJar);

        var b = tabB.PostAsync("/tab/b", null);
        var c = tabC.PostAsync("/tab/c", null);
        await Within(Task.WhenAll(loaded["b"].Task, loaded["c"].Task));
        var loggedIn = await Within(login.PostAsync("/login", null));
        proceed.SetResult();
        var (responseB, responseC) = (await Within(b), await Within(c));

        Assert.Equal(HttpStatusCode.OK, loggedIn.StatusCode);
        Assert.Equal(HttpStatusCode.OK, responseB.StatusCode);
        Assert.Equal(HttpStatusCode.OK, responseC.StatusCode);

        // A cookie with the replaced key arriving after the login's would take the browser back to a dying key.
        Assert.Empty(SessionCookiesOf(responseB));
        Assert.Empty(SessionCookiesOf(responseC));
        Assert.Equal("b,c,cart,user", await login.GetStringAsync("/keys"));
        Assert.Empty(Events.Invalid);
    }

    [Fact]
    public async Task RegenerateIdAsync_WhoseAnswerIsLostAfterStorageAppliedIt_SendsTheNewKey_SoTheBrowserIsNotLeftOnAZombie()
    {
        await using var app = await StartAsync();
        var browser = app.CreateClient(out _);
        await browser.PostAsync("/seed/cart/3-items", null);

        Storage.LoseRegenerateAnswers = true;
        var loggedIn = await browser.PostAsync("/login", null);
        Storage.LoseRegenerateAnswers = false;

        Assert.Equal(HttpStatusCode.OK, loggedIn.StatusCode);
        Assert.Single(SessionCookiesOf(loggedIn));
        Assert.Equal("alice", await browser.GetStringAsync("/read/user"));
        Assert.Empty(Events.Zombies);

        // The browser holds the current key: a login tried again (another privilege change) is not refused as a zombie's.
        Assert.Equal(HttpStatusCode.OK, (await browser.PostAsync("/login", null)).StatusCode);
        Assert.Equal("cart,user", await browser.GetStringAsync("/keys"));
    }

    [Fact]
    public async Task RegenerateIdAsync_WhoseStorageFailsBeforeApplyingIt_Throws_AndTheBrowserKeepsItsKey()
    {
        await using var app = await StartAsync(a => a.MapPost("/login-or-fail", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            Storage.Fail = true;
            try
            {
                await c.Session.RegenerateIdAsync();
                return "regenerated";
            }
            catch (SessionStorageException)
            {
                return "failed";
            }
            finally
            {
                Storage.Fail = false;
            }
        }));
        var browser = app.CreateClient(out _);
        await browser.PostAsync("/seed/cart/3-items", null);

        var response = await browser.PostAsync("/login-or-fail", null);

        Assert.Equal("failed", await response.Content.ReadAsStringAsync());
        Assert.Empty(SessionCookiesOf(response));
        Assert.Equal("3-items", await browser.GetStringAsync("/read/cart"));
        Assert.Empty(Events.Zombies);
    }

    [Fact]
    public async Task RegenerateIdAsync_OldCookieTabsUnderExclusive_WaitForTheLoginsLockThenSucceedWithTheNewCookie()
    {
        var regenerated = Gate();
        var release = Gate();
        await using var app = await StartAsync(a =>
        {
            a.MapPost("/login/held", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                c.Session.SetString("user", "alice");
                await c.Session.RegenerateIdAsync();
                regenerated.SetResult();
                await release.Task;
                return "ok";
            }).WithSessionLock(SessionLockMode.Exclusive);
            a.MapPost("/tab/{name}", async (HttpContext c, string name) =>
            {
                await c.Session.LoadAsync();
                c.Session.SetString(name, "written by tab " + name);
                return c.Session.GetString("user") ?? "(anonymous)";
            }).WithSessionLock(SessionLockMode.Exclusive);
        });
        var login = app.CreateClient(out var loginJar);
        var oldKey = KeyOf(app, SessionCookieOf(await login.PostAsync("/seed/cart/3-items", null)));
        var tabB = Tab(app, loginJar);
        var tabC = Tab(app, loginJar);

        var loggingIn = login.PostAsync("/login/held", null);
        await Within(regenerated.Task);
        var b = tabB.PostAsync("/tab/b", null);
        var c = tabC.PostAsync("/tab/c", null);
        await Within(Task.WhenAny(app.WhenQueuedForLock(2), b, c).Unwrap());

        Assert.False(b.IsCompleted, "A tab with the old cookie ran while the login held the lock.");
        Assert.False(c.IsCompleted, "A tab with the old cookie ran while the login held the lock.");
        release.SetResult();
        var loggedIn = await Within(loggingIn);
        var (responseB, responseC) = (await Within(b), await Within(c));
        Assert.Equal(HttpStatusCode.OK, loggedIn.StatusCode);
        Assert.Equal(HttpStatusCode.OK, responseB.StatusCode);
        Assert.Equal(HttpStatusCode.OK, responseC.StatusCode);
        Assert.Equal("alice", await responseB.Content.ReadAsStringAsync());
        Assert.Equal("alice", await responseC.Content.ReadAsStringAsync());
        var newKey = KeyOf(app, SessionCookieOf(loggedIn));
        Assert.NotEqual(oldKey, newKey);
        // A zombie request is served the session but never handed the current key.
        Assert.Empty(SessionCookiesOf(responseB));
        Assert.Empty(SessionCookiesOf(responseC));
        Assert.Equal(["/tab/b", "/tab/c"], Events.Zombies.Order(StringComparer.Ordinal));
        Assert.Equal("b,c,cart,user", await login.GetStringAsync("/keys"));
    }

    [Fact]
    public async Task RegenerateIdAsync_SendsANewCookieThatSeesTheDataUnderTheSameSessionId()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        var seeded = await client.PostAsync("/seed/cart/3-items", null);
        var idBefore = await seeded.Content.ReadAsStringAsync();
        var oldCookie = SessionCookieOf(seeded);

        var loggedIn = await client.PostAsync("/login", null);

        // One session cookie, Asm's: the stock middleware never writes its own over it.
        var newCookie = SessionCookieOf(loggedIn);
        Assert.NotEqual(oldCookie.Value, newCookie.Value);
        Assert.NotEqual(KeyOf(app, oldCookie), KeyOf(app, newCookie));
        Assert.Equal(idBefore, await loggedIn.Content.ReadAsStringAsync());
        var next = await client.GetAsync("/id");
        Assert.Equal(idBefore, await next.Content.ReadAsStringAsync());
        Assert.Empty(SessionCookiesOf(next));
        Assert.Equal("cart,user", await client.GetStringAsync("/keys"));
        Assert.Equal("3-items", await client.GetStringAsync("/read/cart"));
        Assert.Empty(Events.Zombies);
        Assert.Empty(Events.Invalid);
    }

    [Fact]
    public async Task RegenerateIdAsync_OnASessionCreatedInTheSameRequest_SendsExactlyOneCookieThatFindsIt()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();

        var loggedIn = await client.PostAsync("/login", null);

        var key = KeyOf(app, SessionCookieOf(loggedIn));
        Assert.StartsWith(await loggedIn.Content.ReadAsStringAsync(), key, StringComparison.Ordinal);
        Assert.Equal("alice", await client.GetStringAsync("/read/user"));
        Assert.Empty(Events.Invalid);
    }

    [Theory]
    [InlineData(SessionLockMode.Lockless)]
    [InlineData(SessionLockMode.LockOnWrite)]
    public async Task RegenerateIdAsync_TwoRequestsAtOnce_BothSucceedAndBothReturnedKeysWork(SessionLockMode mode)
    {
        var loaded = new Dictionary<string, TaskCompletionSource> { ["x"] = Gate(), ["y"] = Gate() };
        var go = Gate();
        await using var app = await StartAsync(a => a.MapPost("/regenerate/{name}", async (HttpContext c, string name) =>
        {
            await c.Session.LoadAsync();
            loaded[name].SetResult();
            await go.Task;
            await c.Session.RegenerateIdAsync();
            c.Session.SetString(name, "written by " + name);
            return c.Session.Id;
        }).WithSessionLock(mode));
        var owner = app.CreateClient(out var ownerJar);
        var seeded = await owner.PostAsync("/seed/cart/3-items", null);
        var id = await seeded.Content.ReadAsStringAsync();
        var oldKey = KeyOf(app, SessionCookieOf(seeded));
        var tabX = Tab(app, ownerJar);
        var tabY = Tab(app, ownerJar);

        var x = tabX.PostAsync("/regenerate/x", null);
        var y = tabY.PostAsync("/regenerate/y", null);
        await Within(Task.WhenAll(loaded["x"].Task, loaded["y"].Task));
        go.SetResult();
        var (responseX, responseY) = (await Within(x), await Within(y));

        Assert.Equal(HttpStatusCode.OK, responseX.StatusCode);
        Assert.Equal(HttpStatusCode.OK, responseY.StatusCode);
        Assert.Equal(id, await responseX.Content.ReadAsStringAsync());
        Assert.Equal(id, await responseY.Content.ReadAsStringAsync());
        var keyX = KeyOf(app, SessionCookieOf(responseX));
        var keyY = KeyOf(app, SessionCookieOf(responseY));
        Assert.Equal(3, new HashSet<string>([oldKey, keyX, keyY], StringComparer.Ordinal).Count);

        var zombiesBefore = Events.Zombies.Count;
        var readX = await tabX.GetAsync("/keys");
        var readY = await tabY.GetAsync("/keys");
        Assert.Equal("cart,x,y", await readX.Content.ReadAsStringAsync());
        Assert.Equal("cart,x,y", await readY.Content.ReadAsStringAsync());
        Assert.Equal(zombiesBefore + 1, Events.Zombies.Count);

        // The key that lost the race is a zombie: its read is served, and handed no key.
        Assert.Empty(SessionCookiesOf(readX));
        Assert.Empty(SessionCookiesOf(readY));
        Assert.Empty(Events.Invalid);
    }

    [Fact]
    public async Task RegenerateIdAsync_UnderAnExclusiveLock_KeepsTheLockUntilTheRequestCommits()
    {
        var regenerated = Gate();
        var release = Gate();
        await using var app = await StartAsync(a =>
        {
            a.MapPost("/login/held", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                await c.Session.RegenerateIdAsync();
                regenerated.SetResult();
                await release.Task;
                c.Session.SetString("user", "alice");
                return "ok";
            }).WithSessionLock(SessionLockMode.Exclusive);
            a.MapPost("/exclusive/read/{name}", async (HttpContext c, string name) =>
            {
                await c.Session.LoadAsync();
                return c.Session.GetString(name) ?? "(none)";
            }).WithSessionLock(SessionLockMode.Exclusive);
        });
        var login = app.CreateClient(out var loginJar);
        await login.PostAsync("/seed/cart/3-items", null);
        var tab = Tab(app, loginJar);

        var loggingIn = login.PostAsync("/login/held", null);
        await Within(regenerated.Task);
        var concurrent = tab.PostAsync("/exclusive/read/user", null);
        await Within(Task.WhenAny(app.WhenQueuedForLock(1), concurrent).Unwrap());

        Assert.False(concurrent.IsCompleted, "The regeneration released the lock: a concurrent exclusive request got in.");
        release.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await Within(loggingIn)).StatusCode);
        var read = await Within(concurrent);
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal("alice", await read.Content.ReadAsStringAsync());
    }

    // ---- Zombie window ----

    [Fact]
    public async Task OldCookie_AfterTheZombieWindow_GetsAFreshSessionAndOneZombieExpiredEvent()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await using var app = await StartAsync(configure: o => o.ZombieLifetime = TimeSpan.FromSeconds(30), time: time);
        var login = app.CreateClient(out var loginJar);
        var id = await (await login.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        var earlyTab = Tab(app, loginJar);
        var lateTab = Tab(app, loginJar);
        var newKey = KeyOf(app, SessionCookieOf(await login.PostAsync("/login", null)));

        time.Advance(TimeSpan.FromSeconds(29));
        var early = await earlyTab.GetAsync("/read/cart");
        Assert.Equal("3-items", await early.Content.ReadAsStringAsync());
        Assert.Empty(SessionCookiesOf(early));
        Assert.Equal(["/read/cart"], Events.Zombies);
        Assert.Empty(Events.Invalid);

        time.Advance(TimeSpan.FromSeconds(2));
        var late = await lateTab.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, late, id, lateTab);
        Assert.Equal(("/probe", InvalidSessionReason.ZombieExpired), Assert.Single(Events.Invalid));
        Assert.Single(Events.Zombies);
        Assert.Equal("cart,user", await login.GetStringAsync("/keys"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RequestSentBeforeALogin_RefusedAfterTheZombieWindow_LeavesTheBrowsersNewCookieAlone(bool loadsBeforeTheLogin)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var arrived = Gate();
        var proceed = Gate();
        await using var app = await StartAsync(
            a => a.MapPost("/report", async (HttpContext c) =>
            {
                // A long request: sent with the pre-login cookie, it needs (or writes) its session only after the
                // login's zombie window has closed.
                if (loadsBeforeTheLogin)
                {
                    await c.Session.LoadAsync();
                }

                arrived.SetResult();
                await proceed.Task;
                await c.Session.LoadAsync();
                c.Session.SetString("report", "done");
                return c.Session.GetString("cart") ?? "(none)";
            }).WithSessionLock(SessionLockMode.LockOnWrite),
            configure: o => o.ZombieLifetime = TimeSpan.FromSeconds(30),
            time: time);
        var browser = app.CreateClient(out _);
        await browser.PostAsync("/seed/cart/3-items", null);

        var report = browser.PostAsync("/report", null);
        await Within(arrived.Task);
        var loggedIn = await browser.PostAsync("/login", null);
        Assert.Single(SessionCookiesOf(loggedIn));
        time.Advance(TimeSpan.FromSeconds(31));
        proceed.SetResult();
        var refused = await Within(report);

        Assert.Equal(HttpStatusCode.OK, refused.StatusCode);
        Assert.Equal("(none)", await refused.Content.ReadAsStringAsync());
        Assert.Empty(SessionCookiesOf(refused));
        Assert.Equal(("/report", InvalidSessionReason.ZombieExpired), Assert.Single(Events.Invalid));
        Assert.Equal("alice", await browser.GetStringAsync("/read/user"));
        Assert.Equal("cart,user", await browser.GetStringAsync("/keys"));
    }

    // ---- Zombie keys serve only the browser that regenerated ----

    [Fact]
    public async Task PlantedKey_AfterTheVictimLogsIn_IsRefusedToTheAttackerWithZombieProfileMismatchAndNoKey()
    {
        await using var app = await StartAsync();
        var attacker = Browser(app, "Attacker/1.0", out var attackerJar);
        var id = await (await attacker.PostAsync("/seed/cart/planted", null)).Content.ReadAsStringAsync();
        var victim = Tab(app, attackerJar, "Victim/1.0");
        var loggedIn = await victim.PostAsync("/login", null);
        var currentKey = KeyOf(app, SessionCookieOf(loggedIn));

        var stolen = await attacker.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, stolen, id, attacker);
        Assert.DoesNotContain(currentKey, KeyOf(app, SessionCookieOf(stolen)), StringComparison.Ordinal);
        Assert.Contains(("/probe", InvalidSessionReason.ZombieProfileMismatch), Events.Invalid);
        Assert.Empty(Events.Zombies);
        Assert.Equal("alice", await victim.GetStringAsync("/read/user"));
    }

    [Fact]
    public async Task ZombieKeyHandlerThatThrows_RefusesTheRequestWithNoSessionCookie_AndGivesTheLockBack()
    {
        await using var app = await StartAsync(a => a.Use(async (c, next) =>
        {
            try
            {
                await next(c);
            }
            catch (UnauthorizedAccessException)
            {
                c.Response.StatusCode = StatusCodes.Status403Forbidden;
            }
        }));
        Events.OnZombieKeyAccessed = _ => throw new UnauthorizedAccessException("An old key: sign in again.");
        var login = app.CreateClient(out var loginJar);
        await login.PostAsync("/seed/cart/3-items", null);
        var oldTab = Tab(app, loginJar);
        await login.PostAsync("/login", null);

        var refused = await Within(oldTab.PostAsync("/probe", null));

        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Empty(SessionCookiesOf(refused));
        Assert.Equal(["/probe"], Events.Zombies);
        Assert.Equal(HttpStatusCode.OK, (await Within(login.PostAsync("/seed/more/1", null))).StatusCode);
        Assert.Equal("cart,more,user", await login.GetStringAsync("/keys"));
    }

    [Fact]
    public async Task ZombieKeyContext_Reject_GivesAFreshSessionAndDeletesTheOldCookie()
    {
        await using var app = await StartAsync();
        Events.OnZombieKeyAccessed = context =>
        {
            context.Reject();
            return Task.CompletedTask;
        };
        var login = app.CreateClient(out var loginJar);
        await login.PostAsync("/seed/cart/3-items", null);
        var oldTab = Tab(app, loginJar);
        await login.PostAsync("/login", null);

        var refused = await oldTab.GetAsync("/read/cart");

        Assert.Equal("(none)", await refused.Content.ReadAsStringAsync());
        Assert.True(SessionCookieOf(refused).Expires < DateTimeOffset.UtcNow);
        Assert.Equal("alice", await login.GetStringAsync("/read/user"));
    }

    [Fact]
    public async Task ZombieLifetimeZero_OldKeyIsRefusedAtOnce()
    {
        await using var app = await StartAsync(configure: o => o.ZombieLifetime = TimeSpan.Zero);
        var login = app.CreateClient(out var loginJar);
        await login.PostAsync("/seed/cart/3-items", null);
        var oldTab = Tab(app, loginJar);
        await login.PostAsync("/login", null);

        Assert.Equal("(none)", await oldTab.GetStringAsync("/read/cart"));

        Assert.Equal(("/read/cart", InvalidSessionReason.ZombieExpired), Assert.Single(Events.Invalid));
        Assert.Empty(Events.Zombies);
    }

    // ---- Rejected cookies and new sessions ----

    [Fact]
    public async Task RejectedCookie_OnAReadingRequest_IsDeletedInTheSameResponseAndReportedOnce()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient(out var jar);
        jar.Cookies.Add(Site, new System.Net.Cookie(CookieName, "not-a-protected-key", "/"));

        var first = await client.GetAsync("/read/cart");
        await client.GetAsync("/read/cart");
        await client.GetAsync("/read/cart");

        Assert.True(SessionCookieOf(first).Expires < DateTimeOffset.UtcNow);
        Assert.Equal(("/read/cart", InvalidSessionReason.Malformed), Assert.Single(Events.Invalid));
    }

    [Fact]
    public async Task DiscardChanges_OnANewSession_SendsNoCookie()
    {
        await using var app = await StartAsync(a => a.MapPost("/set-and-discard", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("cart", "1");
            ((IAsmSession)c.Session).DiscardChanges();
            return "discarded";
        }));
        var client = app.CreateClient();

        var response = await client.PostAsync("/set-and-discard", null);

        Assert.Equal("discarded", await response.Content.ReadAsStringAsync());
        Assert.Empty(SessionCookiesOf(response));
        Assert.Equal("(none)", await client.GetStringAsync("/read/cart"));
        Assert.Empty(Events.Invalid);
    }

    // ---- Client profiles ----

    [Fact]
    public async Task ProfileChanged_ByDefault_IsRaisedOnceForANewUserAgentWhichIsThenRecorded()
    {
        await using var app = await StartAsync();
        var owner = Browser(app, OwnerAgent, out var ownerJar);
        await owner.PostAsync("/seed/cart/3-items", null);
        var other = Tab(app, ownerJar, OtherAgent);

        Assert.Equal("3-items", await other.GetStringAsync("/read/cart"));

        var change = Assert.Single(Events.ProfileChanges);
        Assert.Contains(OtherAgent, change.CurrentProfile, StringComparison.Ordinal);
        Assert.Contains(OwnerAgent, Assert.Single(change.PreviousProfiles), StringComparison.Ordinal);
        Assert.False(change.Rejected);
        Assert.Equal("3-items", await other.GetStringAsync("/read/cart"));
        Assert.Equal("cart,visitor", await ReadAfterProbeAsync(other));
        Assert.Equal("cart,visitor", await owner.GetStringAsync("/keys"));
        Assert.Single(Events.ProfileChanges);
    }

    [Fact]
    public async Task ProfileChanged_Rejected_GivesTheRequestAFreshSessionAndLeavesTheOwnersUntouched()
    {
        await using var app = await StartAsync(configure: o => o.Events.OnProfileChanged = c =>
        {
            c.Reject();
            return Task.CompletedTask;
        });
        var owner = Browser(app, OwnerAgent, out var ownerJar);
        var id = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        var thief = Tab(app, ownerJar, OtherAgent);

        var stolen = await thief.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, stolen, id, thief);
        Assert.True(Assert.Single(Events.ProfileChanges).Rejected);

        // The owner's session kept its data and its lock: an exclusive write goes through at once.
        Assert.Equal("cart", await owner.GetStringAsync("/keys"));
        Assert.Equal(HttpStatusCode.OK, (await Within(owner.PostAsync("/seed/more/1", null))).StatusCode);
        Assert.Equal("cart,more", await owner.GetStringAsync("/keys"));
        Assert.Equal(id, await owner.GetStringAsync("/id"));
        Assert.Single(Events.ProfileChanges);
    }

    [Fact]
    public async Task ProfileProvider_ReturningNull_SkipsTheCheck()
    {
        await using var app = await StartAsync(configure: o =>
        {
            o.ProfileProvider = c => c.Request.Headers.UserAgent is { Count: > 0 } agent ? agent.ToString() : null;
            o.Events.OnProfileChanged = c =>
            {
                c.Reject();
                return Task.CompletedTask;
            };
        });
        var owner = Browser(app, OwnerAgent, out var ownerJar);
        await owner.PostAsync("/seed/cart/3-items", null);
        var anonymous = Tab(app, ownerJar);

        Assert.Equal("3-items", await anonymous.GetStringAsync("/read/cart"));
        Assert.Equal("cart,visitor", await ReadAfterProbeAsync(anonymous));
        Assert.Equal("cart,visitor", await owner.GetStringAsync("/keys"));
        Assert.Empty(Events.ProfileChanges);
    }

    // ---- Destroy ----

    [Fact]
    public async Task DestroyAsync_ExpiresTheCookie()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/seed/cart/3-items", null);

        var destroyed = await client.PostAsync("/destroy", null);

        Assert.Equal(HttpStatusCode.OK, destroyed.StatusCode);
        var cookie = SessionCookieOf(destroyed);
        Assert.True(cookie.Expires < DateTimeOffset.UtcNow, $"The session cookie was not expired: {cookie}");
        Assert.Equal("(none)", await client.GetStringAsync("/read/cart"));
        Assert.Empty(Events.Invalid);
    }

    [Theory]
    [InlineData(SessionLockMode.Lockless)]
    [InlineData(SessionLockMode.LockOnWrite)]
    [InlineData(SessionLockMode.Exclusive)]
    public async Task DestroyAsync_WhileARequestIsInFlight_RefusesItsCommitSoNothingIsResurrected(SessionLockMode inFlightMode)
    {
        var loaded = Gate();
        var proceed = Gate();
        await using var app = await StartAsync(a =>
        {
            a.MapPost("/slow-write", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                var cart = c.Session.GetString("cart") ?? "(none)";
                loaded.SetResult();
                await proceed.Task;
                c.Session.SetString("resurrected", "yes");
                return cart;
            }).WithSessionLock(inFlightMode);
            a.MapPost("/destroy/lockless", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                await c.Session.DestroyAsync();
                return "destroyed";
            }).WithSessionLock(SessionLockMode.Lockless);
        });
        var owner = app.CreateClient(out var ownerJar);
        var id = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        var slowTab = Tab(app, ownerJar);
        var laterTab = Tab(app, ownerJar);

        var slow = slowTab.PostAsync("/slow-write", null);
        await Within(loaded.Task);
        var destroyed = await Within(owner.PostAsync("/destroy/lockless", null));
        proceed.SetResult();
        var slowResponse = await Within(slow);

        Assert.Equal(HttpStatusCode.OK, destroyed.StatusCode);
        Assert.True(SessionCookieOf(destroyed).Expires < DateTimeOffset.UtcNow);
        Assert.Equal(HttpStatusCode.OK, slowResponse.StatusCode);
        Assert.Equal("3-items", await slowResponse.Content.ReadAsStringAsync());
        if (SessionCookiesOf(slowResponse) is [var cookie])
        {
            // LockOnWrite meets the tombstone when its write takes the lock: the write starts a new session, as any
            // request presenting the destroyed cookie would, and never lands in the destroyed one.
            Assert.Equal(SessionLockMode.LockOnWrite, inFlightMode);
            Assert.NotEqual(id, KeyOf(app, cookie)[..id.Length]);
        }

        Assert.Equal("", await laterTab.GetStringAsync("/keys"));
        Assert.Equal(("/keys", InvalidSessionReason.Destroyed), Assert.Single(Events.Invalid, e => e.Path == "/keys"));
        Assert.DoesNotContain(Events.Invalid, e => e.Reason != InvalidSessionReason.Destroyed);
    }

    [Fact]
    public async Task OldCookie_AfterDestroy_GetsAFreshSessionAndOneDestroyedEvent()
    {
        await using var app = await StartAsync();
        var owner = app.CreateClient(out var ownerJar);
        var id = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        var stale = Tab(app, ownerJar);
        await owner.PostAsync("/destroy", null);

        var reused = await stale.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, reused, id, stale);
        Assert.Equal(("/probe", InvalidSessionReason.Destroyed), Assert.Single(Events.Invalid));
    }

    [Fact]
    public async Task ValuesSetAfterDestroyAsync_InTheSameRequest_StartANewSessionUnderANewKey()
    {
        var created = 0;
        await using var app = await StartAsync(configure: o => o.Events.OnSessionCreated = _ =>
        {
            Interlocked.Increment(ref created);
            return Task.CompletedTask;
        });
        var owner = app.CreateClient(out var ownerJar);
        var oldId = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        var stale = Tab(app, ownerJar);

        var response = await owner.PostAsync("/destroy-then-set", null);

        var newId = await response.Content.ReadAsStringAsync();
        var cookie = SessionCookieOf(response);
        Assert.NotEqual(oldId, newId);
        Assert.True(cookie.Expires is null || cookie.Expires > DateTimeOffset.UtcNow, $"The new session's cookie is expired: {cookie}");
        Assert.Equal("fresh", await owner.GetStringAsync("/read/after"));
        Assert.Equal("(none)", await owner.GetStringAsync("/read/cart"));
        Assert.Equal(newId, await owner.GetStringAsync("/id"));
        Assert.Equal(2, created);
        Assert.Empty(Events.Invalid);
        Assert.Equal("(none)", await stale.GetStringAsync("/read/after"));
        Assert.Equal(("/read/after", InvalidSessionReason.Destroyed), Assert.Single(Events.Invalid));
    }

    // ---- Encryption at rest (every driver; the bytes themselves in StoredSessionIdentityTests) ----

    [Fact]
    public async Task EncryptAtRest_ValuesAndProfilesRoundTripThroughRegeneration()
    {
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var owner = Browser(app, OwnerAgent, out var ownerJar);
        await owner.PostAsync("/seed/cart/3-items", null);
        await owner.PostAsync("/login", null);
        var other = Tab(app, ownerJar, OtherAgent);

        Assert.Equal("cart,user", await owner.GetStringAsync("/keys"));
        Assert.Equal("3-items", await owner.GetStringAsync("/read/cart"));
        Assert.Equal("alice", await other.GetStringAsync("/read/user"));
        var change = Assert.Single(Events.ProfileChanges);
        Assert.Contains(OwnerAgent, Assert.Single(change.PreviousProfiles), StringComparison.Ordinal);
        Assert.Equal("alice", await other.GetStringAsync("/read/user"));
        Assert.Single(Events.ProfileChanges);
        Assert.Empty(Events.Invalid);
    }

    [Fact]
    public async Task EncryptAtRest_TamperedValue_GivesACorruptEventAndAFreshSessionNotAnError()
    {
        await using var app = await StartAsync(configure: o => o.EncryptAtRest = true);
        var owner = app.CreateClient();
        var id = await (await owner.PostAsync("/seed/cart/3-items", null)).Content.ReadAsStringAsync();
        Storage.TamperedSessionId = id;

        var read = await owner.PostAsync("/probe", null);

        await AssertFreshSessionAsync(app, read, id, owner);
        Assert.Equal(("/probe", InvalidSessionReason.Corrupt), Assert.Single(Events.Invalid));
    }

    // ---- The app and its clients ----

    /// <summary>
    /// Starts an app on this test's storage with the common endpoints, the recording events and the observing
    /// driver, plus whatever <paramref name="map"/> adds.
    /// </summary>
    private protected async Task<SessionApp> StartAsync(
        Action<WebApplication>? map = null, Action<AsmSessionOptions>? configure = null, TimeProvider? time = null, Action<IServiceCollection>? services = null)
    {
        return await SessionApp.StartAsync(
            builder => Driver.Use(builder, Scope),
            app =>
            {
                MapCommonEndpoints(app);
                map?.Invoke(app);
            },
            options =>
            {
                options.Events = Events;
                configure?.Invoke(options);
            },
            time,
            s =>
            {
                Storage = ChaosSessionDriver.Wrap(s);
                services?.Invoke(s);
            });
    }

    private static void MapCommonEndpoints(WebApplication app)
    {
        app.MapPost("/seed/{name}/{value}", async (HttpContext c, string name, string value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString(name, value);
            return c.Session.Id;
        });
        app.MapPost("/login", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("user", "alice");
            await c.Session.RegenerateIdAsync();
            return c.Session.Id;
        });
        app.MapPost("/probe", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            var cart = c.Session.GetString("cart") ?? "(none)";
            c.Session.SetString("visitor", "here");
            return $"{cart}|{c.Session.Id}";
        });
        app.MapPost("/destroy", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            await c.Session.DestroyAsync();
            return "destroyed";
        });
        app.MapPost("/destroy-then-set", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            await c.Session.DestroyAsync();
            c.Session.SetString("after", "fresh");
            return c.Session.Id;
        });
        app.MapGet("/read/{name}", async (HttpContext c, string name) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString(name) ?? "(none)";
        }).WithSessionLock(SessionLockMode.ReadOnly);
        app.MapGet("/keys", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return string.Join(',', c.Session.Keys.Order(StringComparer.Ordinal));
        }).WithSessionLock(SessionLockMode.ReadOnly);
        app.MapGet("/id", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.Id;
        }).WithSessionLock(SessionLockMode.ReadOnly);
    }

    /// <summary>A new browser with its own cookies, sending <paramref name="userAgent"/>.</summary>
    private protected static HttpClient Browser(SessionApp app, string userAgent, out CookieJarHandler jar)
    {
        var client = app.CreateClient(out jar);
        client.DefaultRequestHeaders.TryAddWithoutValidation(HeaderNames.UserAgent, userAgent);
        return client;
    }

    /// <summary>Another tab holding the cookies <paramref name="source"/> holds now (another browser, with a user agent).</summary>
    private protected static HttpClient Tab(SessionApp app, CookieJarHandler source, string? userAgent = null)
    {
        var client = app.CreateClient(out var jar);
        foreach (System.Net.Cookie cookie in source.Cookies.GetCookies(Site))
        {
            jar.Cookies.Add(Site, new System.Net.Cookie(cookie.Name, cookie.Value, cookie.Path));
        }

        if (userAgent is not null)
        {
            client.DefaultRequestHeaders.TryAddWithoutValidation(HeaderNames.UserAgent, userAgent);
        }

        return client;
    }

    private protected static IReadOnlyList<SetCookieHeaderValue> SessionCookiesOf(HttpResponseMessage response) =>
        response.Headers.TryGetValues(HeaderNames.SetCookie, out var values)
            ? [.. SetCookieHeaderValue.ParseList([.. values]).Where(c => c.Name.Equals(CookieName, StringComparison.Ordinal))]
            : [];

    /// <summary>The one session cookie the response sets.</summary>
    private protected static SetCookieHeaderValue SessionCookieOf(HttpResponseMessage response) => Assert.Single(SessionCookiesOf(response));

    /// <summary>
    /// Checks that <paramref name="response"/> was served a fresh, empty session (not <paramref name="previousId"/>),
    /// that its cookie carries the fresh key, and that <paramref name="client"/> goes on in that session.
    /// </summary>
    private protected static async Task AssertFreshSessionAsync(SessionApp app, HttpResponseMessage response, string previousId, HttpClient client)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var (cart, freshId) = Split(await response.Content.ReadAsStringAsync());
        Assert.Equal("(none)", cart);
        Assert.NotEqual(previousId, freshId);
        Assert.StartsWith(freshId, KeyOf(app, SessionCookieOf(response)), StringComparison.Ordinal);
        Assert.Equal("visitor", await client.GetStringAsync("/keys"));
    }

    /// <summary>The session key a cookie carries, unprotected as the stock middleware does.</summary>
    private protected static string KeyOf(SessionApp app, SetCookieHeaderValue cookie)
    {
        var protector = app.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("SessionMiddleware");
        var value = Uri.UnescapeDataString(cookie.Value.ToString());
        value = value.PadRight(value.Length + ((4 - (value.Length % 4)) % 4), '=');
        return Encoding.UTF8.GetString(protector.Unprotect(Convert.FromBase64String(value)));
    }

    private protected static (string Cart, string Id) Split(string probe)
    {
        var parts = probe.Split('|');
        return (parts[0], parts[1]);
    }

    private protected static TaskCompletionSource Gate() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private protected static Task Within(Task task) => task.WaitAsync(Patience);

    private protected static Task<T> Within<T>(Task<T> task) => task.WaitAsync(Patience);

    private static async Task<string> ReadAfterProbeAsync(HttpClient client)
    {
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/probe", null)).StatusCode);
        return await client.GetStringAsync("/keys");
    }
}
