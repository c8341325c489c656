using System.Net;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter.Tests.EndToEnd;

/// <summary>
/// The session middleware's edges, on the stock session and on Asm: a pipeline without <c>app.UseSession()</c>, the
/// session feature, a session used after the response started or after the request, cookies that name no session,
/// are no key or come twice, and a commit that fails. Each test runs one scenario on both and compares what the app
/// and the browser see; where Asm differs on purpose, the test asserts the difference its docs describe.
/// </summary>
public sealed class StockSessionEdgeTests
{
    [Fact]
    public async Task SessionWithoutUseSession_ThrowsTheStockExceptionAndMessage()
    {
        async Task<string> OutcomeAsync(string store)
        {
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a => a.MapGet("/", (HttpContext c) =>
                $"feature={c.Features.Get<ISessionFeature>() is not null} {Outcome(() => _ = c.Session.IsAvailable)}"), useSession: false);
            return await app.GetTestClient().GetStringAsync("/");
        }

        var stock = await OutcomeAsync("stock");

        Assert.Equal(stock, await OutcomeAsync("asm"));
        Assert.Equal("feature=False InvalidOperationException: Session has not been configured for this application or request.", stock);
    }

    [Fact]
    public async Task SessionFeature_IsSetWhileTheRequestRunsAndWhenItsResponseStarts_AndGoneAfterTheRequest()
    {
        async Task<string> OutcomeAsync(string store)
        {
            var completed = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a => a.MapGet("/", (HttpContext c) =>
            {
                var starting = "";
                c.Response.OnStarting(() =>
                {
                    starting = $"starting: feature={c.Features.Get<ISessionFeature>()?.Session is not null}";
                    return Task.CompletedTask;
                });
                c.Response.OnCompleted(() =>
                {
                    completed.TrySetResult($"{starting}; completed: feature={c.Features.Get<ISessionFeature>() is not null} {Outcome(() => _ = c.Session.IsAvailable)}");
                    return Task.CompletedTask;
                });
                return $"running: feature={c.Features.Get<ISessionFeature>()?.Session is not null} same={ReferenceEquals(c.Features.Get<ISessionFeature>()?.Session, c.Session)}";
            }));
            var running = await app.GetTestClient().GetStringAsync("/");
            return $"{running}; {await completed.Task.WaitAsync(TimeSpan.FromSeconds(30))}";
        }

        var stock = await OutcomeAsync("stock");

        Assert.Equal(stock, await OutcomeAsync("asm"));
        Assert.Equal(
            "running: feature=True same=True; starting: feature=True; completed: feature=False InvalidOperationException: Session has not been configured for this application or request.",
            stock);
    }

    [Fact]
    public async Task SessionReadAndWrittenAfterTheResponseStarted_AnswersAsTheStockSession()
    {
        // A new session cannot be established once the response has started (its cookie could not be sent); a stored
        // one is read and written as before, without a new cookie.
        async Task<string> TranscriptAsync(string store)
        {
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a =>
            {
                a.MapPost("/set", (HttpContext c) => c.Session.SetString("a", "1"));
                a.MapPost("/late", async (HttpContext c) =>
                {
                    await c.Response.WriteAsync("started ");
                    await c.Response.Body.FlushAsync();
                    var read = c.Session.GetString("a") ?? "<none>";
                    var write = Outcome(() => c.Session.SetString("b", "2"));
                    var commit = await OutcomeAsync(() => c.Session.CommitAsync());
                    await c.Response.WriteAsync($"a={read} set b: {write} commit: {commit}");
                });
                a.MapGet("/read", (HttpContext c) => $"a={c.Session.GetString("a") ?? "<none>"} b={c.Session.GetString("b") ?? "<none>"}");
            });
            using var client = BrowserOf(app);
            return string.Join(Environment.NewLine, [
                await RequestAsync(client, HttpMethod.Post, "/late"),
                await RequestAsync(client, HttpMethod.Get, "/read"),
                await RequestAsync(client, HttpMethod.Post, "/set"),
                await RequestAsync(client, HttpMethod.Post, "/late"),
                await RequestAsync(client, HttpMethod.Get, "/read"),
            ]);
        }

        var stock = await TranscriptAsync("stock");

        Assert.Equal(stock, await TranscriptAsync("asm"));
        Assert.Contains("set b: InvalidOperationException: The session cannot be established after the response has started.", stock, StringComparison.Ordinal);
        Assert.EndsWith("200 cookie=none: a=1 b=2", stock, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SessionWrittenAfterTheRequest_StockLosesTheWriteSilently_AsmThrowsAsTheLockingPageSays()
    {
        async Task<string> OutcomeAsync(string store)
        {
            var completed = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a =>
            {
                a.MapPost("/set", (HttpContext c) => c.Session.SetString("a", "1"));
                a.MapPost("/after", (HttpContext c) =>
                {
                    var session = c.Session;
                    c.Response.OnCompleted(() =>
                    {
                        completed.TrySetResult($"read a={session.GetString("a")} set b: {Outcome(() => session.SetString("b", "2"))}");
                        return Task.CompletedTask;
                    });
                });
                a.MapGet("/read", (HttpContext c) => $"b={c.Session.GetString("b") ?? "<none>"}");
            });
            using var client = BrowserOf(app);
            await client.PostAsync("/set", null);
            await client.PostAsync("/after", null);
            var after = await completed.Task.WaitAsync(TimeSpan.FromSeconds(30));
            return $"{after}; next request {await client.GetStringAsync("/read")}";
        }

        // Neither stores the write; the stock session takes it and drops it, Asm says so (docs/locking.md, "After the request").
        Assert.Equal("read a=1 set b: ok; next request b=<none>", await OutcomeAsync("stock"));
        Assert.Matches(
            "^read a=1 set b: InvalidOperationException: The request of session .+ has ended \\(the session middleware made its final commit\\).*; next request b=<none>$",
            await OutcomeAsync("asm"));
    }

    [Fact]
    public async Task CookieNamingNoStoredSession_StockStoresUnderItSilently_AsmGivesANewKeyAndCookie_TheBrowserKeepsItsValueOnBoth()
    {
        // A cookie this app can read whose session is not stored (the storage was emptied, or it was made by an app
        // sharing the Data Protection keys but not the storage): a cookie from a twin app on its own storage.
        async Task<string> TranscriptAsync(string store)
        {
            var keys = new EphemeralDataProtectionProvider();
            var invalid = new List<string>();
            void Services(IServiceCollection s)
            {
                s.AddSingleton<IDataProtectionProvider>(keys);
                s.Configure<AsmSessionOptions>(o => o.Events.OnInvalidSessionAccessed = e =>
                {
                    invalid.Add(e.Reason.ToString());
                    return Task.CompletedTask;
                });
            }

            await using var twin = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, MapReadAndWrite, services: Services);
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, MapReadAndWrite, services: Services);
            var twinBrowser = new CookieJarHandler(twin.GetTestServer().CreateHandler());
            using var twinClient = new HttpClient(twinBrowser) { BaseAddress = new Uri("http://localhost/") };
            await twinClient.PostAsync("/write?v=twin", null);
            var browser = new CookieJarHandler(app.GetTestServer().CreateHandler());
            browser.Cookies.Add(twinBrowser.Cookies.GetAllCookies());
            using var client = new HttpClient(browser) { BaseAddress = new Uri("http://localhost/") };
            return string.Join(Environment.NewLine, [
                await RequestAsync(client, HttpMethod.Get, "/read"),
                await RequestAsync(client, HttpMethod.Post, "/write?v=mine"),
                await RequestAsync(client, HttpMethod.Get, "/read"),
                $"events: {string.Join(",", invalid)}",
            ]);
        }

        Assert.Equal(
            """
            200 cookie=none: v=<none>
            200 cookie=none: v=mine
            200 cookie=none: v=mine
            events: 
            """.ReplaceLineEndings(), await TranscriptAsync("stock"));
        // Strict ids (docs/lifetime.md): the unknown key is never adopted; the read deletes it, the write gets a new one.
        Assert.Equal(
            """
            200 cookie=delete: v=<none>
            200 cookie=set: v=mine
            200 cookie=none: v=mine
            events: Unknown
            """.ReplaceLineEndings(), await TranscriptAsync("asm"));
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("")]
    [InlineData("CfDJ8AAAAAAAAAAAAAAAAAAAAAA")]
    public async Task CookieThatIsNoKey_GetsANewSessionOnBoth_AndAsmAlsoDeletesIt(string cookie)
    {
        async Task<string> TranscriptAsync(string store)
        {
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, MapReadAndWrite);
            var browser = new CookieJarHandler(app.GetTestServer().CreateHandler());
            browser.Cookies.Add(new Cookie(AsmSessionOptions.DefaultCookieName, cookie, "/", "localhost"));
            using var client = new HttpClient(browser) { BaseAddress = new Uri("http://localhost/") };
            var read = await RequestAsync(client, HttpMethod.Get, "/read");
            browser.Cookies.Add(new Cookie(AsmSessionOptions.DefaultCookieName, cookie, "/", "localhost"));
            return string.Join(Environment.NewLine, [
                read,
                await RequestAsync(client, HttpMethod.Post, "/write?v=1"),
                await RequestAsync(client, HttpMethod.Get, "/read"),
            ]);
        }

        var stock = await TranscriptAsync("stock");
        var asm = await TranscriptAsync("asm");

        Assert.Equal("200 cookie=none: v=<none>" + Environment.NewLine + "200 cookie=set: v=1" + Environment.NewLine + "200 cookie=none: v=1", stock);
        // Asm deletes a cookie it does not adopt on a request that uses the session (docs/lifetime.md, "Strict IDs"); an
        // empty one is no cookie on both.
        Assert.Equal(cookie.Length == 0 ? stock : stock.Replace("200 cookie=none: v=<none>", "200 cookie=delete: v=<none>", StringComparison.Ordinal), asm);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task TwoCookiesOfTheSessionsName_TheLastOneCounts_OnBoth(bool validFirst)
    {
        async Task<string> TranscriptAsync(string store)
        {
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, MapReadAndWrite);
            var browser = new CookieJarHandler(app.GetTestServer().CreateHandler());
            using var client = new HttpClient(browser) { BaseAddress = new Uri("http://localhost/") };
            await client.PostAsync("/write?v=kept", null);
            var valid = browser.Cookies.GetAllCookies().Single().Value;
            using var raw = app.GetTestClient();
            var header = validFirst ? $"{AsmSessionOptions.DefaultCookieName}={valid}; {AsmSessionOptions.DefaultCookieName}=garbage"
                : $"{AsmSessionOptions.DefaultCookieName}=garbage; {AsmSessionOptions.DefaultCookieName}={valid}";
            using var request = new HttpRequestMessage(HttpMethod.Get, "/read");
            request.Headers.Add("Cookie", header);
            var response = await raw.SendAsync(request);
            return $"{Describe(response)}: {await response.Content.ReadAsStringAsync()}";
        }

        var stock = await TranscriptAsync("stock");
        var asm = await TranscriptAsync("asm");

        Assert.Equal(validFirst ? "200 cookie=none: v=<none>" : "200 cookie=none: v=kept", stock);
        // A last cookie that is no key is deleted by Asm (docs/lifetime.md, "Strict IDs").
        Assert.Equal(validFirst ? "200 cookie=delete: v=<none>" : stock, asm);
    }

    [Fact]
    public async Task CommitThatFails_IsLoggedAndSwallowedByTheMiddleware_AndThrownByAnExplicitCommitAsync_OnBoth()
    {
        async Task<(string Transcript, IReadOnlyList<string> Logged)> TranscriptAsync(string store)
        {
            var logs = new FakeLogCollector();
            StorageFaults faults = null!;
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a =>
            {
                MapReadAndWrite(a);
                a.MapPost("/write-and-commit", async (HttpContext c) =>
                {
                    await c.Session.LoadAsync();
                    c.Session.SetString("v", "committed");
                    return await OutcomeAsync(() => c.Session.CommitAsync());
                });
            }, services: s =>
            {
                s.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs));
                faults = StorageFaults.Inject(store, s);
            });
            using var client = BrowserOf(app);
            var transcript = new List<string> { await RequestAsync(client, HttpMethod.Post, "/write?v=kept") };
            faults.FailWrites(true);
            transcript.Add(await RequestAsync(client, HttpMethod.Post, "/write?v=lost"));
            transcript.Add(await RequestAsync(client, HttpMethod.Post, "/write-and-commit"));
            faults.FailWrites(false);
            transcript.Add(await RequestAsync(client, HttpMethod.Get, "/read"));
            var logged = logs.GetSnapshot()
                .Where(r => r.Category == "Microsoft.AspNetCore.Session.SessionMiddleware" && r.Level == LogLevel.Error)
                .Select(r => $"{r.Id.Name}: {r.Exception?.GetType().Name}").ToList();
            return (string.Join(Environment.NewLine, transcript), logged);
        }

        var stock = await TranscriptAsync("stock");
        var asm = await TranscriptAsync("asm");

        // Asm's explicit commit throws SessionStorageException (docs/reliability.md), the stock one the cache's exception.
        Assert.Equal(stock.Transcript.Replace("IOException", "SessionStorageException", StringComparison.Ordinal), asm.Transcript);
        Assert.Contains("200 cookie=none: SessionStorageException", asm.Transcript, StringComparison.Ordinal);
        Assert.EndsWith("200 cookie=none: v=kept", asm.Transcript, StringComparison.Ordinal);
        // The middleware logs the failed final commit on both. After a failed explicit commit the stock middleware's
        // final commit tries again (and logs again); Asm's does not retry it (docs/reliability.md).
        Assert.Equal(["ErrorClosingTheSession: IOException", "ErrorClosingTheSession: IOException"], stock.Logged);
        Assert.Equal(["ErrorClosingTheSession: SessionStorageException"], asm.Logged);
    }

    [Fact]
    public async Task LoadOrCommitWithACancelledToken_ThrowsWritesNothing_AndTheFinalCommitStoresTheChanges_AsTheStockSessionDoes()
    {
        // An app that passes RequestAborted to LoadAsync and CommitAsync, for a request its client has given up on.
        async Task<string> TranscriptAsync(string store)
        {
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a =>
            {
                MapReadAndWrite(a);
                a.MapPost("/cancelled", async Task<string> (HttpContext c, string v) =>
                {
                    var cancelled = new CancellationToken(canceled: true);
                    var load = await OutcomeAsync(() => c.Session.LoadAsync(cancelled));
                    c.Session.SetString("v", v);
                    var commit = await OutcomeAsync(() => c.Session.CommitAsync(cancelled));
                    return $"load: {load} commit: {commit} v={c.Session.GetString("v")}";
                });
            });
            using var client = BrowserOf(app);
            return string.Join(Environment.NewLine, [
                await RequestAsync(client, HttpMethod.Post, "/cancelled?v=new"),
                await RequestAsync(client, HttpMethod.Get, "/read"),
                await RequestAsync(client, HttpMethod.Post, "/cancelled?v=changed"),
                await RequestAsync(client, HttpMethod.Get, "/read"),
            ]);
        }

        var stock = await TranscriptAsync("stock");

        Assert.Equal(stock, await TranscriptAsync("asm"));
        Assert.Equal(
            """
            200 cookie=set: load: OperationCanceledException commit: OperationCanceledException v=new
            200 cookie=none: v=new
            200 cookie=none: load: OperationCanceledException commit: OperationCanceledException v=changed
            200 cookie=none: v=changed
            """.ReplaceLineEndings(), stock);
    }

    [Fact]
    public async Task ArrayReadFromTheSessionThenChanged_StockStoresTheChangeWithTheNextWrite_AsmStoresNothingOfIt()
    {
        async Task<string> TranscriptAsync(string store)
        {
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a =>
            {
                MapReadAndWrite(a);
                a.MapPost("/change-then-write", (HttpContext c) =>
                {
                    c.Session.TryGetValue("v", out var read);
                    read![0] = (byte)'X';
                    c.Session.SetString("other", "1");
                });
            });
            using var client = BrowserOf(app);
            await client.PostAsync("/write?v=kept", null);
            await client.PostAsync("/change-then-write", null);
            return await client.GetStringAsync("/read");
        }

        // The stock session hands out the array it stores; Asm stores only what Set is given (docs/drivers.md).
        Assert.Equal("v=Xept", await TranscriptAsync("stock"));
        Assert.Equal("v=kept", await TranscriptAsync("asm"));
    }

    [Fact]
    public async Task IOTimeoutInfinite_TurnsTheTimeoutOff_AndTheAppServesSessions_AsWithTheStockSession()
    {
        // SessionOptions.IOTimeout says Timeout.InfiniteTimeSpan disables it; an app that set it keeps it after the swap.
        async Task<string> TranscriptAsync(string store)
        {
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, MapReadAndWrite, services: s =>
            {
                s.Configure<SessionOptions>(o => o.IOTimeout = Timeout.InfiniteTimeSpan);
                s.Configure<AsmSessionOptions>(o => o.IOTimeout = Timeout.InfiniteTimeSpan);
            });
            using var client = BrowserOf(app);
            return string.Join(Environment.NewLine, [
                await RequestAsync(client, HttpMethod.Post, "/write?v=1"),
                await RequestAsync(client, HttpMethod.Get, "/read"),
            ]);
        }

        var stock = await TranscriptAsync("stock");

        Assert.Equal(stock, await TranscriptAsync("asm"));
        Assert.Equal("200 cookie=set: v=1" + Environment.NewLine + "200 cookie=none: v=1", stock);
    }

    [Fact]
    public async Task UseSessionWithItsOwnOptions_KeepsTheSessionAcrossRequests_AsTheStockSessionDoes()
    {
        // app.UseSession(options): the middleware is given its own SessionOptions (the cookie it reads, its timeouts).
        var logs = new FakeLogCollector();
        async Task<string> TranscriptAsync(string store)
        {
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a =>
            {
                a.UseSession(new SessionOptions { Cookie = { Name = "app.sid" }, IdleTimeout = TimeSpan.FromMinutes(5) });
                MapReadAndWrite(a);
            }, useSession: false, services: s => s.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs)));
            using var client = BrowserOf(app);
            var write = await client.PostAsync("/write?v=1", null);
            return string.Join(Environment.NewLine, [
                $"{Describe(write)} {string.Join(" | ", write.Headers.GetValues("Set-Cookie").Select(c => c[..c.IndexOf('=', StringComparison.Ordinal)]))}",
                await RequestAsync(client, HttpMethod.Get, "/read"),
            ]);
        }

        var stock = await TranscriptAsync("stock");

        Assert.Equal("200 cookie=set app.sid" + Environment.NewLine + "200 cookie=none: v=1", stock);
        // Asm's cookie is AsmSessionOptions.Cookie whatever the middleware was given (docs/getting-started.md).
        Assert.Equal(stock.Replace("app.sid", AsmSessionOptions.DefaultCookieName, StringComparison.Ordinal), await TranscriptAsync("asm"));
        // Once, however many requests: the timeouts given to UseSession are not Asm's.
        Assert.Equal(
            "SessionOptions sets the IdleTimeout and IOTimeout given to app.UseSession(options), which Asm's session does not use: " +
            "it takes its cookie and timeouts from AsmSessionOptions. Set them there (AddAsmSession(o => ...) or Configure<AsmSessionOptions>).",
            Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 71).Message);
    }

    [Fact]
    public async Task UseSessionWithItsOwnCookieName_ABrowserStillHoldingThatCookie_KeepsItsSessionAcrossRequests()
    {
        // The app kept app.UseSession(options) from its stock days: its browsers still send that cookie (app.sid), which
        // the middleware reads and hands the store. Asm's session is under Asm's cookie all the same.
        async Task<string> TranscriptAsync(string store)
        {
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a =>
            {
                a.UseSession(new SessionOptions { Cookie = { Name = "app.sid" } });
                MapReadAndWrite(a);
            }, useSession: false);
            var browser = new CookieJarHandler(app.GetTestServer().CreateHandler());
            var protector = app.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("SessionMiddleware");
            var stale = Convert.ToBase64String(protector.Protect(System.Text.Encoding.UTF8.GetBytes(Guid.NewGuid().ToString()))).TrimEnd('=');
            browser.Cookies.Add(new Uri("http://localhost/"), new System.Net.Cookie("app.sid", stale));
            using var client = new HttpClient(browser) { BaseAddress = new Uri("http://localhost/") };
            return string.Join(Environment.NewLine, [
                await RequestAsync(client, HttpMethod.Post, "/write?v=1"),
                await RequestAsync(client, HttpMethod.Get, "/read"),
                await RequestAsync(client, HttpMethod.Get, "/read"),
            ]);
        }

        Assert.Equal(
            """
            200 cookie=none: v=1
            200 cookie=none: v=1
            200 cookie=none: v=1
            """.ReplaceLineEndings(), await TranscriptAsync("stock"));
        // Asm's cookie is set by the first write and read from then on; the stale cookie names no Asm session.
        Assert.Equal(
            """
            200 cookie=set: v=1
            200 cookie=none: v=1
            200 cookie=none: v=1
            """.ReplaceLineEndings(), await TranscriptAsync("asm"));
    }

    [Fact]
    public async Task UseSessionWithItsOwnCookieName_ARequestSendingAsmsCookieUnderBothNames_DoesNotLoseEveryLaterSession()
    {
        // The middleware reads app.sid. The first request to carry Asm's cookie is an attacker's that sends the cookie
        // Asm gave it under both names: the middleware hands the store the very key Asm's cookie holds, which is what a
        // middleware reading Asm's cookie would do. Were the store to conclude that, it would trust the middleware from
        // then on, and every browser holding only Asm's cookie would be handed a new session at every request.
        await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync("asm", a =>
        {
            a.UseSession(new SessionOptions { Cookie = { Name = "app.sid" } });
            MapReadAndWrite(a);
        }, useSession: false);
        using var attacker = app.GetTestClient();
        var written = await attacker.PostAsync("/write?v=attacker", null);
        var cookie = written.Headers.GetValues("Set-Cookie").Single().Split(';')[0].Split('=', 2)[1];
        using var teach = new HttpRequestMessage(HttpMethod.Get, "/read");
        teach.Headers.Add("Cookie", $"app.sid={cookie}; {AsmSessionOptions.DefaultCookieName}={cookie}");
        Assert.Equal("v=attacker", await (await attacker.SendAsync(teach)).Content.ReadAsStringAsync());

        using var browser = BrowserOf(app);
        Assert.Equal(
            """
            200 cookie=set: v=1
            200 cookie=none: v=1
            """.ReplaceLineEndings(), string.Join(Environment.NewLine, [
                await RequestAsync(browser, HttpMethod.Post, "/write?v=1"),
                await RequestAsync(browser, HttpMethod.Get, "/read"),
            ]));
    }

    [Fact]
    public async Task StorageDownAtASynchronousFirstAccess_TheSessionIsUnavailableForTheRequest_AsTheStockSessionIs()
    {
        async Task<string> TranscriptAsync(string store)
        {
            StorageFaults faults = null!;
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a =>
            {
                MapReadAndWrite(a);
                a.MapPost("/calls", (HttpContext c) => string.Join(" ", [
                    $"available={c.Session.IsAvailable}",
                    $"id={(c.Session.Id.Length == 0 ? "<empty>" : "<id>")}",
                    $"v={c.Session.GetString("v") ?? "<none>"}",
                    $"set: {Outcome(() => c.Session.SetString("w", "1"))}",
                    $"remove: {Outcome(() => c.Session.Remove("v"))}",
                    $"clear: {Outcome(c.Session.Clear)}",
                    $"keys=[{string.Join(",", c.Session.Keys)}]",
                ]));
                a.MapPost("/load", async Task<string> (HttpContext c) => await OutcomeAsync(() => c.Session.LoadAsync()));
            }, services: s => faults = StorageFaults.Inject(store, s));
            using var client = BrowserOf(app);
            var transcript = new List<string> { await RequestAsync(client, HttpMethod.Post, "/write?v=kept") };
            faults.FailAll(true);
            transcript.Add(await RequestAsync(client, HttpMethod.Post, "/calls"));
            transcript.Add(await RequestAsync(client, HttpMethod.Post, "/load"));
            faults.FailAll(false);
            transcript.Add(await RequestAsync(client, HttpMethod.Get, "/read"));
            return string.Join(Environment.NewLine, transcript);
        }

        var stock = await TranscriptAsync("stock");

        // LoadAsync throws SessionStorageException on Asm, the cache's own exception on the stock session (docs/lifetime.md).
        Assert.Equal(stock.Replace("IOException", "SessionStorageException", StringComparison.Ordinal), await TranscriptAsync("asm"));
        Assert.Equal(
            """
            200 cookie=set: v=kept
            200 cookie=none: available=False id=<empty> v=<none> set: ok remove: ok clear: ok keys=[]
            200 cookie=none: IOException
            200 cookie=none: v=kept
            """.ReplaceLineEndings(), stock);
    }

    [Fact]
    public async Task NameWithALoneSurrogate_StockStoresItAsUFFFD_AsmRefusesIt_AsTheDriversPageSays()
    {
        async Task<string> TranscriptAsync(string store)
        {
            await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a => a.MapPost("/", (HttpContext c) => string.Join(" ", [
                $"set: {Outcome(() => c.Session.SetString("a\uD800", "1"))}",
                $"get a\\uD800={c.Session.GetString("a\uD800") ?? "<none>"}",
                $"get a\\uDBFF={c.Session.GetString("a\uDBFF") ?? "<none>"}",
                $"keys=[{string.Join(",", c.Session.Keys.Select(k => Uri.EscapeDataString(k.Replace("\uD800", "%D800", StringComparison.Ordinal))))}]",
            ])));
            using var client = BrowserOf(app);
            return await RequestAsync(client, HttpMethod.Post, "/") + Environment.NewLine + await RequestAsync(client, HttpMethod.Post, "/");
        }

        // The stock session encodes the name to UTF-8 with U+FFFD for the surrogate: two names become one, and the
        // next request reads the name back as "a\uFFFD". Asm refuses the name (docs/drivers.md).
        Assert.Equal(
            """
            200 cookie=set: set: ok get a\uD800=1 get a\uDBFF=1 keys=[a%25D800]
            200 cookie=none: set: ok get a\uD800=1 get a\uDBFF=1 keys=[a%EF%BF%BD]
            """.ReplaceLineEndings(), await TranscriptAsync("stock"));
        Assert.Equal(
            """
            200 cookie=none: set: ArgumentException: A session value name must be well-formed UTF-16: it has a lone surrogate, which not every driver can store. (Parameter 'key') get a\uD800=<none> get a\uDBFF=<none> keys=[]
            200 cookie=none: set: ArgumentException: A session value name must be well-formed UTF-16: it has a lone surrogate, which not every driver can store. (Parameter 'key') get a\uD800=<none> get a\uDBFF=<none> keys=[]
            """.ReplaceLineEndings(), await TranscriptAsync("asm"));
    }

    /// <summary>Maps <c>GET /read</c> (answers <c>v=</c> the value) and <c>POST /write?v=</c>.</summary>
    private static void MapReadAndWrite(WebApplication app)
    {
        app.MapGet("/read", (HttpContext c) => $"v={c.Session.GetString("v") ?? "<none>"}");
        app.MapPost("/write", (HttpContext c, string v) =>
        {
            c.Session.SetString("v", v);
            return $"v={v}";
        });
    }

    /// <summary>A client that keeps cookies as a browser does.</summary>
    private static HttpClient BrowserOf(WebApplication app) =>
        new(new CookieJarHandler(app.GetTestServer().CreateHandler())) { BaseAddress = new Uri("http://localhost/") };

    /// <summary>Sends a request; answers its status, what it does with the session cookie, and its body.</summary>
    private static async Task<string> RequestAsync(HttpClient client, HttpMethod method, string path)
    {
        var response = await client.SendAsync(new HttpRequestMessage(method, path));
        return $"{Describe(response)}: {await response.Content.ReadAsStringAsync()}";
    }

    /// <summary>A response's status and what it does with the session cookie.</summary>
    private static string Describe(HttpResponseMessage response) => $"{(int)response.StatusCode} cookie={CookieOf(response)}";

    /// <summary>What a response does with the session cookie: <c>none</c>, <c>set</c> or <c>delete</c>.</summary>
    internal static string CookieOf(HttpResponseMessage response) => response.Headers.TryGetValues("Set-Cookie", out var values)
        ? string.Join(",", values.Select(v => v.Contains("expires=Thu, 01 Jan 1970", StringComparison.Ordinal) ? "delete" : "set"))
        : "none";

    private static string Outcome(Action action)
    {
        try
        {
            action();
            return "ok";
        }
        catch (Exception ex)
        {
            return $"{ex.GetType().Name}: {ex.Message}";
        }
    }

    private static async Task<string> OutcomeAsync(Func<Task> action)
    {
        try
        {
            await action();
            return "ok";
        }
        catch (Exception ex)
        {
            return ex.GetType().Name;
        }
    }

    /// <summary>Switches failures of the storage under the stock session (its cache) or Asm (its driver) on and off.</summary>
    private sealed record StorageFaults(Action<bool> FailWrites, Action<bool> FailAll)
    {
        /// <summary>Puts a storage that fails on demand under the session of <paramref name="store"/>.</summary>
        public static StorageFaults Inject(string store, IServiceCollection services)
        {
            if (store == "stock")
            {
                var cache = new FailingCache();
                services.AddSingleton<IDistributedCache>(cache);
                return new(fail => cache.FailWrites = fail, fail => cache.FailAll = fail);
            }

            var chaos = ChaosSessionDriver.Wrap(services);
            return new(fail => chaos.FailCommits = fail, fail => chaos.Fail = fail);
        }
    }

    /// <summary>
    /// The stock session's cache, whose writes fail as on a full disk while <see cref="FailWrites"/> is set, and every
    /// call as with the storage down while <see cref="FailAll"/> is.
    /// </summary>
    private sealed class FailingCache() : MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions())), IDistributedCache
    {
        public bool FailWrites { get; set; }

        public bool FailAll { get; set; }

        byte[]? IDistributedCache.Get(string key) => FailAll ? throw new IOException("Injected failure: storage down.") : Get(key);

        Task<byte[]?> IDistributedCache.GetAsync(string key, CancellationToken token) =>
            FailAll ? throw new IOException("Injected failure: storage down.") : GetAsync(key, token);

        Task IDistributedCache.RefreshAsync(string key, CancellationToken token) =>
            FailAll ? throw new IOException("Injected failure: storage down.") : RefreshAsync(key, token);

        void IDistributedCache.Set(string key, byte[] value, DistributedCacheEntryOptions options)
        {
            ThrowIfFailing();
            Set(key, value, options);
        }

        Task IDistributedCache.SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token)
        {
            ThrowIfFailing();
            return SetAsync(key, value, options, token);
        }

        private void ThrowIfFailing()
        {
            if (FailWrites || FailAll)
            {
                throw new IOException("Injected failure: no space left on device.");
            }
        }
    }
}
