using System.Collections.Concurrent;
using System.Net;
using Asm.Caching;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Users;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.Users;

/// <summary>Users and session ends, end to end through the stock <c>app.UseSession()</c>, on every driver.</summary>
public abstract class SessionUserTests<TDriver>(TDriver driver) : IClassFixture<TDriver>
    where TDriver : class, IDriverFixture
{
    private static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);

    private readonly string _scope = Guid.NewGuid().ToString("N");
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly ConcurrentQueue<SessionEndedContext> _ended = new();
    private readonly ConcurrentQueue<InvalidSessionReason> _invalid = new();

    protected TDriver Driver { get; } = driver;

    [Fact]
    public async Task BindUser_ListsTheSessionWithItsUserProfileAndTimes_AndGivesItANewKey()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient(out var jar);
        client.DefaultRequestHeaders.UserAgent.ParseAdd("Laptop/1.0");
        await client.PostAsync("/set/name/ada", null);
        var before = jar.Cookies.GetAllCookies().Single().Value;
        var created = _time.GetUtcNow();

        // More than a sixteenth of the idle timeout, so that the requests below slide the idle expiry.
        _time.Advance(TimeSpan.FromMinutes(2));

        var id = await BindAsync(client, "ada");

        Assert.NotEqual(before, jar.Cookies.GetAllCookies().Single().Value);
        Assert.Equal("ada", await client.GetStringAsync("/user"));
        Assert.Equal("ada", await client.GetStringAsync("/get/name"));
        var session = Assert.Single(await Manager(app).GetUserSessionsAsync("ada"));
        Assert.Equal(id, session.SessionId);
        Assert.Equal("ada", session.UserId);
        Assert.Equal(created.ToUnixTimeMilliseconds(), session.CreatedAt.ToUnixTimeMilliseconds());
        Assert.Equal((_time.GetUtcNow() + Idle).ToUnixTimeMilliseconds(), session.IdleExpiresAt.ToUnixTimeMilliseconds());
        Assert.Equal(_time.GetUtcNow().ToUnixTimeMilliseconds(), session.LastAccessedAt.ToUnixTimeMilliseconds());
        Assert.Equal((created + TimeSpan.FromHours(8)).ToUnixTimeMilliseconds(), session.AbsoluteExpiresAt?.ToUnixTimeMilliseconds());
        Assert.Contains(session.Profiles, p => p.Contains("Laptop/1.0", StringComparison.Ordinal));
        var byId = await Manager(app).GetSessionAsync(id);
        Assert.Equal(session with { Profiles = [] }, byId! with { Profiles = [] });
        Assert.Equal(session.Profiles, byId.Profiles);
    }

    [Fact]
    public async Task BindUser_WithEncryptAtRest_TheOldKeyIsAZombieOfTheBrowserThatLoggedIn_AndTheDevicesListReadsItsProfile()
    {
        await using var app = await StartAsync(o => o.EncryptAtRest = true);
        var client = app.CreateClient(out var jar);
        client.DefaultRequestHeaders.UserAgent.ParseAdd("Laptop/1.0");
        await client.PostAsync("/set/name/ada", null);
        var oldTab = app.CreateClient(out var oldJar);
        oldTab.DefaultRequestHeaders.UserAgent.ParseAdd("Laptop/1.0");
        oldJar.Cookies.Add(jar.Cookies.GetAllCookies());
        var thief = app.CreateClient(out var thiefJar);
        thiefJar.Cookies.Add(jar.Cookies.GetAllCookies());

        var id = await BindAsync(client, "ada");

        // The profile the bind stored with the replaced key is sealed as the session's others are, and opens.
        Assert.Equal("ada", await oldTab.GetStringAsync("/user"));
        Assert.Equal("", await thief.GetStringAsync("/user"));
        Assert.Equal([InvalidSessionReason.ZombieProfileMismatch], _invalid);
        var session = Assert.Single(await Manager(app).GetUserSessionsAsync("ada"));
        Assert.Equal(id, session.SessionId);
        Assert.Contains(session.Profiles, p => p.Contains("Laptop/1.0", StringComparison.Ordinal));
    }

    [Fact]
    public async Task BindUser_OnANewSession_StoresItAndBindsIt()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();

        var id = await BindAsync(client, "ada");

        Assert.Equal(id, Assert.Single(await Manager(app).GetUserSessionsAsync("ada")).SessionId);
        Assert.Equal("ada", await client.GetStringAsync("/user"));
    }

    [Fact]
    public async Task BindUser_ToAnotherUser_MovesTheSessionBetweenIndexes()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        var id = await BindAsync(client, "ada");

        Assert.Equal(id, await BindAsync(client, "bob"));

        Assert.Empty(await Manager(app).GetUserSessionsAsync("ada"));
        Assert.Equal(id, Assert.Single(await Manager(app).GetUserSessionsAsync("bob")).SessionId);
        Assert.Empty(await Tracking(app).GetUserIndexAsync("ada", default));
    }

    [Fact]
    public async Task DestroyUserSessions_EndsEveryOtherDevice_AndKeepsThisOne()
    {
        await using var app = await StartAsync();
        var here = app.CreateClient();
        var others = new[] { app.CreateClient(), app.CreateClient() };
        var hereId = await BindAsync(here, "ada");
        await here.PostAsync("/set/name/here", null);
        foreach (var other in others)
        {
            await BindAsync(other, "ada");
            await other.PostAsync("/set/name/other", null);
        }

        Assert.Equal("2", await (await here.PostAsync("/logout-others", null)).Content.ReadAsStringAsync());

        Assert.Equal(hereId, Assert.Single(await Manager(app).GetUserSessionsAsync("ada")).SessionId);
        Assert.Equal("here", await here.GetStringAsync("/get/name"));
        foreach (var other in others)
        {
            Assert.Equal("", await other.GetStringAsync("/get/name"));
        }

        Assert.Equal([InvalidSessionReason.Destroyed, InvalidSessionReason.Destroyed], _invalid);
        Assert.Equal(2, _ended.Count(e => e is { Reason: SessionEndReason.Destroyed, UserId: "ada" }));
    }

    [Fact]
    public async Task MaxSessionsPerUser_EndsTheLeastRecentlyUsedSessions()
    {
        await using var app = await StartAsync(o => o.MaxSessionsPerUser = 2);
        var first = app.CreateClient();
        var second = app.CreateClient();
        var third = app.CreateClient();
        var firstId = await BindAsync(first, "ada");
        _time.Advance(TimeSpan.FromMinutes(1));
        var secondId = await BindAsync(second, "ada");
        _time.Advance(TimeSpan.FromMinutes(1));
        await first.GetStringAsync("/get/name");
        _time.Advance(TimeSpan.FromMinutes(1));

        var thirdId = await BindAsync(third, "ada");

        var live = await Manager(app).GetUserSessionsAsync("ada");
        Assert.Equal([firstId, thirdId], live.Select(s => s.SessionId));
        var evicted = Assert.Single(_ended);
        Assert.Equal((secondId, "ada", SessionEndReason.Evicted), (evicted.SessionId, evicted.UserId, evicted.Reason));
        Assert.Equal("", await second.GetStringAsync("/user"));
        Assert.Equal([InvalidSessionReason.Destroyed], _invalid);
    }

    [Fact]
    public async Task SessionEnded_IsReportedOnceForAnIdleTimeout_WithItsUser()
    {
        await using var app = await StartAsync();
        var id = await BindAsync(app.CreateClient(), "ada");
        var unbound = await SetAsync(app.CreateClient());

        _time.Advance(Idle - TimeSpan.FromSeconds(1));
        Assert.Equal(0, await SweepAsync(app));
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(2, await SweepAsync(app));
        Assert.Equal(0, await SweepAsync(app));

        Assert.Equal(2, _ended.Count);
        Assert.Contains(_ended, e => (e.SessionId, e.UserId, e.Reason) == (id, "ada", SessionEndReason.IdleTimeout));
        Assert.Contains(_ended, e => (e.SessionId, e.UserId, e.Reason) == (unbound, null, SessionEndReason.IdleTimeout));
        Assert.All(_ended, e => Assert.NotNull(e.Services.GetService<IAsmSessionManager>()));
        Assert.Empty(await Tracking(app).GetUserIndexAsync("ada", default));
    }

    [Fact]
    public async Task SessionEnded_IsReportedForAnAbsoluteTimeout_AndNotBeforeForAnActiveSession()
    {
        await using var app = await StartAsync(o => o.AbsoluteTimeout = TimeSpan.FromMinutes(50));
        var client = app.CreateClient();
        var id = await BindAsync(client, "ada");
        for (var i = 0; i < 4; i++)
        {
            _time.Advance(TimeSpan.FromMinutes(12));
            await client.GetStringAsync("/get/name");
            Assert.Equal(0, await SweepAsync(app));
        }

        _time.Advance(TimeSpan.FromMinutes(3));
        Assert.Equal(1, await SweepAsync(app));

        var ended = Assert.Single(_ended);
        Assert.Equal((id, "ada", SessionEndReason.AbsoluteTimeout), (ended.SessionId, ended.UserId, ended.Reason));
    }

    [Fact]
    public async Task SessionEnded_IsReportedOnceForADestroy_AndNotAgainBySweeps()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        var id = await BindAsync(client, "ada");

        await client.PostAsync("/destroy", null);
        _time.Advance(Idle * 3);
        Assert.Equal(0, await SweepAsync(app));

        var ended = Assert.Single(_ended);
        Assert.Equal((id, "ada", SessionEndReason.Destroyed), (ended.SessionId, ended.UserId, ended.Reason));
        Assert.Empty(await Manager(app).GetUserSessionsAsync("ada"));
    }

    [Fact]
    public async Task ExpireSession_EndsItForEveryClockUnlessItWasUsedSinceItsIdleExpiryWasRead()
    {
        await using var app = await StartAsync();
        var browser = app.CreateClient();
        var id = await SetAsync(browser);
        var read = (await Tracking(app).GetInfoAsync(id, default))!;
        _time.Advance(Idle / 2);
        Assert.Equal("x", await browser.GetStringAsync("/get/name"));

        // Used since the read (its idle expiry slid): left as it is.
        Assert.False(await Tracking(app).ExpireSessionAsync(id, read.IdleExpiresAt, default));
        Assert.Equal("x", await browser.GetStringAsync("/get/name"));

        // As read: ended, and reported expired to the next request, on a clock that finds its timeout far off.
        var current = (await Tracking(app).GetInfoAsync(id, default))!;
        Assert.True(await Tracking(app).ExpireSessionAsync(id, current.IdleExpiresAt, default));
        Assert.Equal("", await browser.GetStringAsync("/get/name"));
        Assert.Equal([InvalidSessionReason.Expired], _invalid);
        Assert.False(await Tracking(app).ExpireSessionAsync(id, current.IdleExpiresAt, default));
    }

    [Fact]
    public async Task ManagerDestroy_RefusesTheInFlightCommit_AndReportsTheCookieDestroyed()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var proceed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await StartAsync(map: a => a.MapPost("/slow", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            entered.SetResult();
            await proceed.Task;
            c.Session.SetString("name", "late");
        }));
        var client = app.CreateClient();
        var id = await BindAsync(client, "ada");
        await client.PostAsync("/set/name/ada", null);

        var slow = client.PostAsync("/slow", null);
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(await Manager(app).DestroySessionAsync(id));
        proceed.SetResult();
        await slow;

        Assert.Equal("", await client.GetStringAsync("/get/name"));
        Assert.Equal([InvalidSessionReason.Destroyed], _invalid);
        Assert.False(await Manager(app).DestroySessionAsync(id));
        Assert.Null(await Manager(app).GetSessionAsync(id));
        Assert.Single(_ended);
    }

    [Theory]
    [InlineData(SessionLockMode.Lockless)]
    [InlineData(SessionLockMode.Exclusive)]
    public async Task CommitAsync_OfASessionLoggedOutElsewhereWhileTheRequestRan_ReturnsWritesNothing_AndTheFinalCommitSendsNothingMore(SessionLockMode mode)
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var proceed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var refused = 0;
        await using var app = await StartAsync(
            map: a => a.MapPost("/slow-commit", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                entered.SetResult();
                await proceed.Task;
                c.Session.SetString("name", "late");

                // As with the stock session, which writes back whatever it holds: a log-out elsewhere is no error here.
                await c.Session.CommitAsync();
                return "committed";
            }).WithSessionLock(mode),
            services: s => s.AddSingleton<ILoggerProvider>(new OnLogged(id => id.Name == "CommitRefused", () => Interlocked.Increment(ref refused))));
        var client = app.CreateClient();
        var id = await BindAsync(client, "ada");
        await client.PostAsync("/set/name/ada", null);

        var slow = client.PostAsync("/slow-commit", null);
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(await Manager(app).DestroySessionAsync(id));
        proceed.SetResult();
        var response = await slow;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("committed", await response.Content.ReadAsStringAsync());

        // Refused once, by the explicit commit; the middleware's final commit does not send the refused changes again.
        Assert.Equal(1, refused);
        Assert.Null(await Manager(app).GetSessionAsync(id));
        Assert.Empty(_invalid);
        Assert.Equal("", await client.GetStringAsync("/get/name"));
        Assert.Equal([InvalidSessionReason.Destroyed], _invalid);
        Assert.Null(await Manager(app).GetSessionAsync(id));
        Assert.Single(_ended);
    }

    [Fact]
    public async Task ReadingTheUserIndex_PrunesEntriesOfEndedSessions()
    {
        await using var app = await StartAsync();
        var stale = await BindAsync(app.CreateClient(), "ada");
        _time.Advance(TimeSpan.FromMinutes(10));
        var live = await BindAsync(app.CreateClient(), "ada");
        await Tracking(app).AddToUserIndexAsync("ada", "AAAAAAAAAAAAAA", default);
        _time.Advance(TimeSpan.FromMinutes(11));

        Assert.Equal(live, Assert.Single(await Manager(app).GetUserSessionsAsync("ada")).SessionId);

        Assert.Equal([live], await Tracking(app).GetUserIndexAsync("ada", default));
        Assert.Null(await Manager(app).GetSessionAsync(stale));
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("a\0b")]
    [InlineData("{ada}")]
    [InlineData("}{")]
    [InlineData("ünïcødé 🚀")]
    public async Task HostileUserIds_AreStoredSafelyAndNeverMixed(string userId)
    {
        await using var app = await StartAsync();
        var id = await BindAsync(app.CreateClient(), userId);
        var plain = await BindAsync(app.CreateClient(), "ada");

        var session = Assert.Single(await Manager(app).GetUserSessionsAsync(userId));
        Assert.Equal((id, userId), (session.SessionId, session.UserId));
        Assert.Equal(plain, Assert.Single(await Manager(app).GetUserSessionsAsync("ada")).SessionId);
        Assert.Equal(1, await Manager(app).DestroyUserSessionsAsync(userId));
        Assert.Empty(await Manager(app).GetUserSessionsAsync(userId));
    }

    [Fact]
    public async Task LongUserId_UpToTheDocumentedLength_IsAccepted()
    {
        await using var app = await StartAsync();
        var userId = new string('u', 10 * 1024);
        var id = await BindAsync(app.CreateClient(), userId);

        Assert.Equal(id, Assert.Single(await Manager(app).GetUserSessionsAsync(userId)).SessionId);
        await Assert.ThrowsAsync<ArgumentException>(() => Manager(app).GetUserSessionsAsync(new string('u', AsmSessionOptions.MaxUserIdLength + 1)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public async Task BadUserIds_AreRefusedWithArgumentException(string userId)
    {
        await using var app = await StartAsync();

        var response = await app.CreateClient().PostAsync("/bind", new StringContent(userId));

        Assert.Equal("ArgumentException", await response.Content.ReadAsStringAsync());
        await Assert.ThrowsAsync<ArgumentException>(() => Manager(app).GetUserSessionsAsync(userId));
        await Assert.ThrowsAsync<ArgumentException>(() => Manager(app).DestroyUserSessionsAsync(userId));
    }

    [Fact]
    public async Task UserIdWithALoneSurrogate_IsRefusedWithArgumentException()
    {
        await using var app = await StartAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => Manager(app).GetUserSessionsAsync("ada\ud800"));
    }

    [Theory]
    [InlineData("AAAAAAAAAAAAAA")]
    [InlineData("../../../etc/x")]
    [InlineData("")]
    [InlineData("{not-an-id}")]
    public async Task UnknownSessionIds_GiveNullAndFalse(string sessionId)
    {
        await using var app = await StartAsync();

        Assert.Null(await Manager(app).GetSessionAsync(sessionId));
        Assert.False(await Manager(app).DestroySessionAsync(sessionId));
        Assert.Empty(await Manager(app).GetUserSessionsAsync("nobody"));
        Assert.Equal(0, await Manager(app).DestroyUserSessionsAsync("nobody"));
        Assert.Empty(_ended);
    }

    [Fact]
    public async Task AThrowingSessionEndedHandler_IsLoggedAndTheSweepGoesOn()
    {
        var calls = 0;
        await using var app = await StartAsync(o => o.Events.OnSessionEnded = _ =>
        {
            Interlocked.Increment(ref calls);
            throw new InvalidOperationException("handler failed");
        });
        await BindAsync(app.CreateClient(), "ada");
        await BindAsync(app.CreateClient(), "bob");
        _time.Advance(Idle + TimeSpan.FromSeconds(1));

        Assert.Equal(2, await SweepAsync(app));

        Assert.Equal(2, calls);
    }

    [Fact]
    public async Task ASweepStoppedHalfWay_LeavesTheEndsItHasNotReportedToTheNextSweep()
    {
        // The app stops (its sweep's token is cancelled) while the first end of the sweep's batch is being reported.
        using var stopping = new CancellationTokenSource();
        await using var app = await StartAsync(o => o.Events.OnSessionEnded = c =>
        {
            _ended.Enqueue(c);
            stopping.Cancel();
            return Task.CompletedTask;
        });
        var ids = new List<string> { await BindAsync(app.CreateClient(), "ada"), await SetAsync(app.CreateClient()), await SetAsync(app.CreateClient()) };
        _time.Advance(Idle + TimeSpan.FromSeconds(1));

        try
        {
            await app.Services.GetRequiredService<SessionLifecycle>().SweepAsync(_time.GetUtcNow(), stopping.Token);
        }
        catch (OperationCanceledException)
        {
            // What a stopped sweep may throw; the ends it did not report are what matters.
        }

        Assert.Single(_ended);
        Assert.Equal(2, await SweepAsync(app));
        Assert.Equal(0, await SweepAsync(app));
        Assert.Equal(ids.Order(), _ended.Select(e => e.SessionId).Order());
        Assert.All(_ended, e => Assert.Equal(SessionEndReason.IdleTimeout, e.Reason));
    }

    [Fact]
    public async Task ANewSessionsExplicitCommit_AbortedOnceTheSessionIsStored_StillRaisesCreatedAndReportsItsEnd()
    {
        // The client goes away (the token passed to CommitAsync is cancelled) just as the storage has stored the session.
        using var aborted = new CancellationTokenSource();
        var created = 0;
        await using var app = await StartAsync(
            o => o.Events.OnSessionCreated = _ =>
            {
                Interlocked.Increment(ref created);
                return Task.CompletedTask;
            },
            a => a.MapPost("/commit", async (HttpContext c) =>
            {
                c.Session.SetString("name", "ada");
                try
                {
                    await c.Session.CommitAsync(aborted.Token);
                }
                catch (OperationCanceledException)
                {
                }

                return c.Session.Id;
            }),
            s => s.AddSingleton<ILoggerProvider>(new OnLogged(id => id.Name == "SessionCreated", aborted.Cancel)));

        var id = await (await app.CreateClient().PostAsync("/commit", null)).Content.ReadAsStringAsync();
        _time.Advance(Idle + TimeSpan.FromSeconds(1));

        Assert.Equal(1, await SweepAsync(app));
        Assert.Equal((id, SessionEndReason.IdleTimeout), (Assert.Single(_ended).SessionId, _ended.Single().Reason));
        Assert.Equal(1, created);
    }

    [Fact]
    public async Task SessionCreated_IsRaisedOnceByTheFirstWrite()
    {
        var created = new ConcurrentQueue<string>();
        await using var app = await StartAsync(o => o.Events.OnSessionCreated = c =>
        {
            created.Enqueue(c.SessionHash);
            return Task.CompletedTask;
        });
        var client = app.CreateClient();

        var id = await SetAsync(client);
        await SetAsync(client);

        Assert.Equal([SessionKey.Hash(id)], created);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task BindUser_OnANewSessionWhoseCreatedHandlerThrows_FailsWithIt_AndEndsTheSessionItStored(bool writesBeforeTheBind)
    {
        var created = new ConcurrentQueue<string>();
        await using var app = await StartAsync(
            o => o.Events.OnSessionCreated = c =>
            {
                created.Enqueue(c.SessionHash);
                throw new InvalidOperationException("The app refuses new sessions.");
            },
            a => a.MapPost("/login", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                if (writesBeforeTheBind)
                {
                    // The new session's cookie is asked for here: the refused login must not send it after all.
                    c.Session.SetString("cart", "3-items");
                }

                try
                {
                    await c.Session.BindUserAsync("ada");
                    return "bound";
                }
                catch (InvalidOperationException ex) when (ex.Message == "The app refuses new sessions.")
                {
                    return "refused";
                }
            }));
        var client = app.CreateClient();

        var response = await client.PostAsync("/login", null);

        Assert.Equal("refused", await response.Content.ReadAsStringAsync());
        Assert.False(response.Headers.Contains("Set-Cookie"));
        Assert.Empty(await Manager(app).GetUserSessionsAsync("ada"));
        var ended = Assert.Single(_ended);
        Assert.Equal((Assert.Single(created), SessionEndReason.Destroyed, null), (SessionKey.Hash(ended.SessionId), ended.Reason, ended.UserId));
        Assert.Null(await Manager(app).GetSessionAsync(ended.SessionId));

        // Nothing is left for a sweep to find later: the stored session was ended, not left to time out.
        _time.Advance(Idle + TimeSpan.FromSeconds(1));
        Assert.Equal(0, await SweepAsync(app));
        Assert.Single(_ended);
    }

    /// <summary>Two app instances on one storage: each end is reported by exactly one of them (shared drivers only).</summary>
    protected async Task TwoInstancesOnOneStorage_ReportEachEndExactlyOnce()
    {
        await using var first = await StartAsync();
        await using var second = await StartAsync(services: s => SessionApp.ShareDataProtection(s, first.Services));
        var ids = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            ids.Add(await BindAsync((i % 2 == 0 ? first : second).CreateClient(), $"user{i % 3}"));
        }

        // Both instances destroy one session at once, then both sweep at once for the others' idle timeouts.
        await Task.WhenAll(Manager(first).DestroySessionAsync(ids[0]), Manager(second).DestroySessionAsync(ids[0]));
        _time.Advance(Idle + TimeSpan.FromSeconds(1));
        var swept = await Task.WhenAll(SweepAsync(first), SweepAsync(second), SweepAsync(first), SweepAsync(second));

        Assert.Equal(ids.Order(), _ended.Select(e => e.SessionId).Order());
        Assert.Equal(SessionEndReason.Destroyed, Assert.Single(_ended, e => e.SessionId == ids[0]).Reason);
        Assert.Equal(5, swept.Sum());
        foreach (var user in new[] { "user0", "user1", "user2" })
        {
            Assert.Empty(await Tracking(first).GetUserIndexAsync(user, default));
        }
    }

    /// <summary>
    /// Two app instances on one storage whose clocks disagree (the second runs two minutes ahead): the one ahead sweeps
    /// a session the other, by its own clock, still serves. The session reported ended must stay ended on every
    /// instance, or else it lives on outside its user's index, where a log-out of every device cannot find it.
    /// </summary>
    protected async Task InstancesWhoseClocksDisagree_OneSweepsASession_ItIsServedNowhereAfterItsEndWasReported()
    {
        var (behind, ahead, clock, browser, id) = await TwoClocksAsync();
        await using (behind)
        await using (ahead)
        {
            Assert.Equal(1, await ahead.Services.GetRequiredService<SessionLifecycle>().SweepAsync(clock.GetUtcNow(), default));
            Assert.Equal(SessionEndReason.IdleTimeout, Assert.Single(_ended, e => e.SessionId == id).Reason);

            // The browser comes back to the instance whose clock is behind; then the user logs out of every device.
            var after = await browser.GetStringAsync("/get/name");
            await Manager(behind).DestroyUserSessionsAsync("ada");

            Assert.Equal("", after);
            Assert.Equal("", await browser.GetStringAsync("/get/name"));
            Assert.Single(_ended, e => e.SessionId == id);
        }
    }

    /// <summary>
    /// As above, with a log-out of every device on the instance ahead, before any sweep: the session it finds ended by
    /// its clock, and so does not destroy, must not be served on by the other.
    /// </summary>
    protected async Task InstancesWhoseClocksDisagree_OneLogsTheUserOutEverywhere_TheSessionTheOtherStillServesEnds()
    {
        var (behind, ahead, _, browser, _) = await TwoClocksAsync();
        await using (behind)
        await using (ahead)
        {
            Assert.Equal(0, await Manager(ahead).DestroyUserSessionsAsync("ada"));

            Assert.Equal("", await browser.GetStringAsync("/get/name"));
            Assert.Empty(await Tracking(behind).GetUserIndexAsync("ada", default));
        }
    }

    /// <summary>
    /// As above, with a lookup by id on the instance ahead (an admin page, a destroy by id): the session it reports
    /// gone by its clock must not be served on by the other, and a destroy by id there then finds nothing to end.
    /// </summary>
    protected async Task InstancesWhoseClocksDisagree_OneLooksTheSessionUp_TheSessionTheOtherStillServesEnds()
    {
        var (behind, ahead, _, browser, id) = await TwoClocksAsync();
        await using (behind)
        await using (ahead)
        {
            Assert.Null(await Manager(ahead).GetSessionAsync(id));

            Assert.Equal("", await browser.GetStringAsync("/get/name"));
            Assert.Null(await Manager(behind).GetSessionAsync(id));
            Assert.False(await Manager(behind).DestroySessionAsync(id));
        }
    }

    /// <summary>
    /// Two instances on one storage, the second's clock two minutes ahead, and a session of user ada bound on the first
    /// and idle for 19 minutes by the first's clock, 21 by the second's: past the 20-minute idle timeout there only.
    /// </summary>
    private async Task<(SessionApp Behind, SessionApp Ahead, FakeTimeProvider AheadClock, HttpClient Browser, string Id)> TwoClocksAsync()
    {
        var clock = new FakeTimeProvider(_time.GetUtcNow() + TimeSpan.FromMinutes(2));
        var behind = await StartAsync();
        var ahead = await StartAsync(services: s => SessionApp.ShareDataProtection(s, behind.Services), time: clock);
        var browser = behind.CreateClient();
        var id = await BindAsync(browser, "ada");
        await browser.PostAsync("/set/name/ada", null);
        _time.Advance(Idle - TimeSpan.FromMinutes(1));
        clock.Advance(Idle - TimeSpan.FromMinutes(1));
        return (behind, ahead, clock, browser, id);
    }

    /// <summary>
    /// A bind whose session step is stored (the new key) but whose user index update fails
    /// (<paramref name="breakIndex"/>, given the scope), caught by the app, then tried again once
    /// <paramref name="repairIndex"/> has repaired the storage, after the old key's zombie window.
    /// </summary>
    protected async Task ABindThatFailsAfterItsSessionStep_IsBoundByTheNextTry(Action<string> breakIndex, Action<string> repairIndex)
    {
        await using var app = await StartAsync(map: a => a.MapPost("/login", async (HttpContext c) =>
        {
            try
            {
                await c.Session.BindUserAsync("ada");
                return "bound";
            }
            catch (SessionStorageException)
            {
                return "failed";
            }
        }));
        var client = app.CreateClient();
        var id = await SetAsync(client);

        breakIndex(_scope);
        Assert.Equal("failed", await (await client.PostAsync("/login", null)).Content.ReadAsStringAsync());
        repairIndex(_scope);
        _time.Advance(TimeSpan.FromMinutes(1));

        Assert.Equal("bound", await (await client.PostAsync("/login", null)).Content.ReadAsStringAsync());
        Assert.Equal(("ada", "x"), (await client.GetStringAsync("/user"), await client.GetStringAsync("/get/name")));
        Assert.Equal(id, Assert.Single(await Manager(app).GetUserSessionsAsync("ada")).SessionId);
        Assert.Empty(_invalid);
    }

    /// <summary>
    /// The user's index damaged in the storage (<paramref name="damage"/>, given the scope) after four sessions were
    /// bound: the list still shows all four, and a log-out of the other devices ends the three others.
    /// </summary>
    protected async Task AUserIndexDamaged_LogOutOtherDevices_StillEndsEveryOtherSession(Func<string, Task> damage)
    {
        await using var app = await StartAsync();
        var here = app.CreateClient();
        var others = new[] { app.CreateClient(), app.CreateClient(), app.CreateClient() };
        await BindAsync(here, "ada");
        foreach (var other in others)
        {
            await BindAsync(other, "ada");
            await other.PostAsync("/set/name/other", null);
        }

        await damage(_scope);

        Assert.Equal(4, (await Manager(app).GetUserSessionsAsync("ada")).Count);
        Assert.Equal("3", await (await here.PostAsync("/logout-others", null)).Content.ReadAsStringAsync());
        foreach (var other in others)
        {
            Assert.Equal("", await other.GetStringAsync("/get/name"));
        }
    }

    /// <summary>
    /// A stored idle expiry that reads as the time a sweep saw but is written differently (a damaged or hand-edited
    /// record) never matches what the sweep read: the sweep tries a few times and then reports the end, instead of
    /// asking storage again for ever.
    /// </summary>
    protected async Task SweepOfASessionWhoseIdleExpiryNeverMatches_ReportsItsEndWithoutSpinning(Func<string, string, Task> rewriteIdleExpiry)
    {
        await using var app = await StartAsync();
        var id = await BindAsync(app.CreateClient(), "ada");
        await rewriteIdleExpiry(_scope, id);
        _time.Advance(Idle + TimeSpan.FromMinutes(1));

        var reported = await app.Services.GetRequiredService<SessionLifecycle>().SweepAsync(_time.GetUtcNow(), default).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, reported);
        Assert.Equal(SessionEndReason.IdleTimeout, Assert.Single(_ended, e => e.SessionId == id).Reason);
    }

    private static IAsmSessionManager Manager(SessionApp app) => app.Services.GetRequiredService<IAsmSessionManager>();

    private static ISessionTrackingDriver Tracking(SessionApp app) => app.Services.GetRequiredService<SessionLifecycle>().Tracking!;

    private Task<int> SweepAsync(SessionApp app) => app.Services.GetRequiredService<SessionLifecycle>().SweepAsync(_time.GetUtcNow(), default);

    private static async Task<string> BindAsync(HttpClient client, string userId)
    {
        var response = await client.PostAsync("/bind", new StringContent(userId));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    private static async Task<string> SetAsync(HttpClient client) =>
        await (await client.PostAsync("/set/name/x", null)).Content.ReadAsStringAsync();

    protected Task<SessionApp> StartAsync(
        Action<AsmSessionOptions>? configure = null,
        Action<WebApplication>? map = null,
        Action<IServiceCollection>? services = null,
        TimeProvider? time = null) =>
        SessionApp.StartAsync(
            b => Driver.Use(b, _scope),
            a =>
            {
                Map(a);
                map?.Invoke(a);
            },
            o =>
            {
                o.IdleTimeout = Idle;
                o.Events.OnInvalidSessionAccessed = c =>
                {
                    _invalid.Enqueue(c.Reason);
                    return Task.CompletedTask;
                };
                o.Events.OnSessionEnded = c =>
                {
                    _ended.Enqueue(c);
                    return Task.CompletedTask;
                };
                configure?.Invoke(o);
            },
            time ?? _time,
            s =>
            {
                // Sweeps run when the test says so, never on the background timer.
                s.Configure<SweepOptions>(o => o.Interval = TimeSpan.FromDays(1));
                services?.Invoke(s);
            });

    private static void Map(WebApplication app)
    {
        app.MapPost("/bind", async (HttpContext c) =>
        {
            var userId = await new StreamReader(c.Request.Body).ReadToEndAsync();
            try
            {
                await c.Session.BindUserAsync(userId);
            }
            catch (ArgumentException ex)
            {
                return ex.GetType().Name;
            }

            return c.Session.Id;
        });
        app.MapPost("/set/{name}/{value}", (HttpContext c, string name, string value) =>
        {
            c.Session.SetString(name, value);
            return c.Session.Id;
        });
        app.MapGet("/get/{name}", (HttpContext c, string name) => c.Session.GetString(name) ?? "");
        app.MapGet("/user", (HttpContext c) => c.Session.UserId ?? "");
        app.MapPost("/destroy", (HttpContext c) => c.Session.DestroyAsync());
        app.MapPost("/logout-others", (HttpContext c, IAsmSessionManager manager) =>
            manager.DestroyUserSessionsAsync(c.Session.UserId!, c.Session.Id));
    }

    /// <summary>Runs an action, on the logging thread, when an event the filter picks is logged.</summary>
    private sealed class OnLogged(Func<EventId, bool> filter, Action action) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (filter(eventId))
            {
                action();
            }
        }

        public void Dispose()
        {
        }
    }
}
