using System.Globalization;
using System.Net;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Tests.Import;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace Asm.SessionAdapter.Tests.EndToEnd;

/// <summary>
/// The session used the way apps use it (a log-out that clears a session the visitor may not have,
/// <c>Response.OnStarting</c> callbacks that write the session, a background task that outlives its request, a client
/// that goes away mid-commit, a middleware before routing), through real requests, beside the stock session where it
/// has the same thing. Event handlers that write the session: <see cref="EventHandlersThatWriteTheSessionTests"/>.
/// </summary>
public sealed class SessionUsedAsAppsDoTests
{
    [Theory]
    [InlineData("stock", "/clear")]
    [InlineData("stock", "/remove")]
    [InlineData("asm", "/clear")]
    [InlineData("asm", "/remove")]
    public async Task RemoveOrClear_WithoutASession_SetsNoCookieAndStoresNothing(string store, string path)
    {
        await using var app = await StartStockOrAsmAsync(store, a =>
        {
            a.MapPost("/clear", (HttpContext c) => c.Session.Clear());
            a.MapPost("/remove", (HttpContext c) => c.Session.Remove("cart"));
        });
        using var client = app.GetTestServer().CreateClient();

        // A log-out endpoint that clears the session, called by a visitor who never had one (a bot, an expired cookie).
        var responses = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => client.PostAsync(path, null)));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.All(responses, r => Assert.False(r.Headers.Contains("Set-Cookie")));
        if (store == "asm")
        {
            Assert.Equal(0, app.Services.GetRequiredService<InMemoryDriver>().Count);
        }
    }

    [Theory]
    [InlineData("stock")]
    [InlineData("asm")]
    public async Task NewSessionWrittenFromAResponseOnStartingCallback_IsStoredAndGetsItsCookie(string store)
    {
        await using var app = await StartStockOrAsmAsync(store, a =>
        {
            // A middleware that records the last page in the session as the response starts.
            a.Use(async (c, next) =>
            {
                RecordLastPageAsTheResponseStarts(c);
                await next(c);
            });
            a.MapGet("/page", () => "page");
            a.MapGet("/last", (HttpContext c) => c.Session.GetString("last") ?? "none");
        });
        using var client = new HttpClient(new CookieJarHandler(app.GetTestServer().CreateHandler())) { BaseAddress = new Uri("http://localhost/") };

        var response = await client.GetAsync("/page");

        Assert.True(response.Headers.Contains("Set-Cookie"));
        Assert.Equal("/page", await client.GetStringAsync("/last"));
    }

    [Theory]
    [InlineData("stock")]
    [InlineData("asm")]
    public async Task UseSessionTwice_WithAMiddlewareBetweenThatReadsTheSession_OneSessionPerRequest(string store)
    {
        await using var app = await StartStockOrAsmAsync(store, a =>
        {
            a.Use(async (c, next) =>
            {
                // A middleware between the two (a theme, a culture) that reads the session: with a second session per
                // request, the endpoint's Exclusive load waited for the lock this one's load took, until LockWaitTimeout.
                await c.Session.LoadAsync();
                c.Items["theme"] = c.Session.GetString("theme");
                await next(c);
            });
            a.UseSession(); // again, as a copied block of start-up code does
            MapIncrement(a);
        });
        using var client = new HttpClient(new CookieJarHandler(app.GetTestServer().CreateHandler())) { BaseAddress = new Uri("http://localhost/") };

        var counts = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var response = await client.PostAsync("/inc", null);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            counts.Add(await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(["1", "2", "3"], counts);
    }

    [Theory]
    [InlineData("middleware")]
    [InlineData("endpoint")]
    public async Task SessionEndedElsewhere_ThenWrittenFromAResponseOnStartingCallback_GetsANewCookie(string registeredBy)
    {
        await using var app = await StartStockOrAsmAsync("asm", a =>
        {
            a.Use(async (c, next) =>
            {
                if (registeredBy == "middleware")
                {
                    RecordLastPageAsTheResponseStarts(c);
                }

                await next(c);
            });
            a.MapGet("/id", (HttpContext c) =>
            {
                c.Session.SetString("last", "/id");
                return c.Session.Id;
            });
            a.MapGet("/page", (HttpContext c) =>
            {
                if (registeredBy == "endpoint")
                {
                    // The callback is registered before the session is first read, which finds the cookie's session gone.
                    RecordLastPageAsTheResponseStarts(c);
                    _ = c.Session.GetString("last");
                }

                return "page";
            });
            a.MapGet("/last", (HttpContext c) => c.Session.GetString("last") ?? "none");
        });
        using var client = new HttpClient(new CookieJarHandler(app.GetTestServer().CreateHandler())) { BaseAddress = new Uri("http://localhost/") };
        var id = await client.GetStringAsync("/id");

        // "Log out other devices" on another device ends this browser's session; its cookie still names it.
        Assert.True(await app.Services.GetRequiredService<IAsmSessionManager>().DestroySessionAsync(id));
        var response = await client.GetAsync("/page");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("/page", await client.GetStringAsync("/last"));
    }

    [Fact]
    public async Task SynchronousIncrementsWithoutLoadAsync_FiveTimesThePoolsThreads_AllCount()
    {
        // Each request blocks a thread-pool thread for its lock wait; the test projects start the pool with 32 threads.
        const int requests = 160;
        using var directory = new FileSystemDriverFixture();
        await using var app = await SessionApp.StartAsync(b => directory.Use(b, "sync"), a => a.MapPost("/inc-sync", (HttpContext c) =>
        {
            // ISession's synchronous API only: the Exclusive load, lock wait included, blocks this thread-pool thread.
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            c.Session.SetInt32("n", n);
            return n;
        }),
        o => o.LockWaitTimeout = TimeSpan.FromMinutes(5)); // the last waits for all the others: a loaded machine is slow
        using var client = app.CreateClient();
        await client.PostAsync("/inc-sync", null);

        var responses = await Task.WhenAll(Enumerable.Range(0, requests).Select(_ => client.PostAsync("/inc-sync", null)));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(Enumerable.Range(2, requests), (await Task.WhenAll(responses.Select(async r => int.Parse(await r.Content.ReadAsStringAsync(), CultureInfo.InvariantCulture)))).Order());
    }

    [Fact]
    public async Task SetThenClear_OnANewSession_StoresItEmptyWithItsCookie_AsTheStockSessionDoes()
    {
        await using var app = await SessionApp.StartAsync(b => b.UseInMemoryDriver(), a =>
        {
            a.MapPost("/set-clear", (HttpContext c) =>
            {
                c.Session.SetString("cart", "1");
                c.Session.Clear();
                return c.Session.Keys.Count();
            });
            a.MapGet("/keys", (HttpContext c) => c.Session.Keys.Count());
        });
        var client = app.CreateClient();

        var response = await client.PostAsync("/set-clear", null);

        Assert.Equal("0", await response.Content.ReadAsStringAsync());
        Assert.True(response.Headers.Contains("Set-Cookie"));
        Assert.Equal(1, app.Services.GetRequiredService<InMemoryDriver>().Count);
        Assert.Equal("0", await client.GetStringAsync("/keys"));
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("unknown")]
    public async Task OnInvalidSessionAccessed_HandlerThatThrows_RefusesTheRequest_AndTheErrorPageStillDeletesTheCookie(string cookie)
    {
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a =>
            {
                // An app's error page, as UseExceptionHandler serves it: the response is cleared and written anew.
                a.UseExceptionHandler(e => e.Run(c => c.Response.WriteAsync("error page")));
                a.MapGet("/cart", async (HttpContext c) =>
                {
                    await c.Session.LoadAsync();
                    return "cart";
                });
            },
            o => o.Events.OnInvalidSessionAccessed = _ => throw new UnauthorizedAccessException("A bad session cookie is refused."));
        var client = app.CreateClient();
        var value = cookie == "unknown" ? StockApp.CookieFor(app.Services, SessionKey.New().Value) : cookie;
        client.DefaultRequestHeaders.Add("Cookie", $"{AsmSessionOptions.DefaultCookieName}={value}");

        var response = await client.GetAsync("/cart");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("error page", await response.Content.ReadAsStringAsync());
        var deleted = Assert.Single(SetCookieHeaderValue.ParseList([.. response.Headers.GetValues("Set-Cookie")]));
        Assert.Equal(AsmSessionOptions.DefaultCookieName, deleted.Name.ToString());
        Assert.True(deleted.Expires < DateTimeOffset.UtcNow, $"The refused cookie was not deleted: {deleted}");
    }

    [Theory]
    [InlineData(false, "InvalidOperationException: The session is read-only for this request (SessionLockMode.ReadOnly")]
    [InlineData(true, "200 flash=Your session expired.")]
    public async Task OnInvalidSessionAccessed_HandlerThatWritesOnAReadOnlyEndpoint_ThrowsUnlessItTakesTheWriteLockFirst(bool escalate, string expected)
    {
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a => a.MapGet("/cart", (HttpContext c) => $"flash={c.Session.GetString("flash")}").WithSessionLock(SessionLockMode.ReadOnly),
            o => o.Events.OnInvalidSessionAccessed = async context =>
            {
                if (escalate)
                {
                    await context.HttpContext.Session.AcquireWriteLockAsync();
                }

                context.HttpContext.Session.SetString("flash", "Your session expired.");
            });
        var client = app.CreateClient();
        client.DefaultRequestHeaders.Add("Cookie", ".AspNetCore.Session=garbage");

        // TestServer hands the exception of a request to its client.
        string outcome;
        try
        {
            var response = await client.GetAsync("/cart");
            outcome = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
        }
        catch (InvalidOperationException ex)
        {
            outcome = $"{nameof(InvalidOperationException)}: {ex.Message}";
        }

        Assert.StartsWith(expected, outcome, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/read", "ReadOnly")]
    [InlineData("/read?early=1", "Exclusive")]
    [InlineData("/no-metadata", "Lockless")]
    public async Task LockMode_WithUseSessionBeforeUseRouting_IsTheEndpointsUnlessAMiddlewareReadsTheSessionBeforeRouting(string path, string mode)
    {
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a =>
            {
                // app.UseSession() came first; a middleware between it and routing, then routing.
                a.Use(async (c, next) =>
                {
                    if (c.Request.Query.ContainsKey("early"))
                    {
                        _ = c.Session.GetString("theme");
                    }

                    await next(c);
                });
                a.UseRouting();
                a.MapGet("/read", (HttpContext c) => $"{((IAsmSession)c.Session).LockMode}").WithSessionLock(SessionLockMode.ReadOnly);
                a.MapGet("/no-metadata", (HttpContext c) => $"{((IAsmSession)c.Session).LockMode}");
            },
            o => o.DefaultLockMode = path.StartsWith("/no-metadata", StringComparison.Ordinal) ? SessionLockMode.Lockless : SessionLockMode.Exclusive);

        // The mode is the endpoint's as known when the session is first loaded: before routing, none is known yet.
        Assert.Equal(mode, await app.CreateClient().GetStringAsync(path));
    }

    [Theory]
    [InlineData(SessionLockMode.Exclusive, true)]
    [InlineData(SessionLockMode.Exclusive, false)]
    [InlineData(SessionLockMode.LockOnWrite, true)]
    [InlineData(SessionLockMode.Lockless, false)]
    [InlineData(SessionLockMode.ReadOnly, true)]
    public async Task SessionUsedByABackgroundTaskAfterItsHttpContextWasDisposed_ReadsRefusesWritesAndCommitsNothing(
        SessionLockMode mode, bool loadedInTheRequest)
    {
        var disposed = new ContextDisposals();
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a =>
            {
                MapIncrement(a);
                a.MapPost("/later", async (HttpContext c) =>
                {
                    var session = c.Session;
                    if (loadedInTheRequest)
                    {
                        await session.LoadAsync();
                    }

                    var contextGone = disposed.Of(c);
                    _ = Task.Run(async () =>
                    {
                        // The server has disposed the request's HttpContext (a server reuses it for the next request).
                        await contextGone;
                        var outcome = $"n={session.GetInt32("n")}";
                        outcome += $" set:{Outcome(() => session.SetInt32("n", 10))}";
                        try
                        {
                            await session.CommitAsync();
                            outcome += " commit:ok";
                        }
                        catch (Exception ex)
                        {
                            outcome += $" commit:{ex.GetType().Name}";
                        }

                        seen.SetResult(outcome);
                    });
                    return "ok";
                }).WithSessionLock(mode);
            },
            o => o.LockWaitTimeout = TimeSpan.FromSeconds(30),
            services: s => s.AddSingleton<IHttpContextFactory>(sp => disposed.Wrap(new DefaultHttpContextFactory(sp))));
        var client = app.CreateClient();
        await client.PostAsync("/inc", null);

        Assert.Equal("ok", await (await client.PostAsync("/later", null)).Content.ReadAsStringAsync());

        Assert.Equal("n=1 set:InvalidOperationException commit:ok", await seen.Task.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("2", await (await client.PostAsync("/inc", null)).Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(SessionLockMode.LockOnWrite)]
    [InlineData(SessionLockMode.Lockless)]
    public async Task WriteLockAskedByABackgroundTask_StillWaitingWhenItsRequestEnds_ThrowsThatTheRequestEnded_AndReportsNothing(SessionLockMode mode)
    {
        // The lease the task is granted once the holder is done goes straight back, and the task is told the request
        // ended: not given an empty session, nor reported as an invalid (Unknown) cookie through a finished request.
        var outcome = await UseFromABackgroundTaskWhileAnotherRequestHoldsTheLockAsync(mode, async session =>
        {
            await session.AcquireWriteLockAsync();
            return $"escalated: n={session.GetInt32("n")}";
        });

        Assert.Matches("^InvalidOperationException: The request of session .+ has ended", outcome);
    }

    [Fact]
    public async Task LoadByABackgroundTask_WhoseLockWaitTimesOutAfterItsRequestEnded_ReadsTheSessionAsAfterTheRequest()
    {
        // The first load of an Exclusive request, whose wait ends in LockWaitFailure.ContinueReadOnly after the request
        // has ended, reads the session as any use after the request does: without a lock, an event or a cookie.
        var outcome = await UseFromABackgroundTaskWhileAnotherRequestHoldsTheLockAsync(SessionLockMode.Exclusive, async session =>
        {
            await session.LoadAsync();
            return $"n={session.GetInt32("n")} set:{Outcome(() => session.SetInt32("n", 10))}";
        }, holdUntilTheTaskIsDone: true, o =>
        {
            o.LockWaitTimeout = TimeSpan.FromSeconds(1);
            o.LockWaitFailure = LockWaitFailure.ContinueReadOnly;
        });

        Assert.Equal("n=1 set:InvalidOperationException", outcome);
    }

    /// <summary>
    /// A request in <paramref name="mode"/> (loaded unless Exclusive) starts <paramref name="use"/> of its session in a
    /// task it does not await, while another request holds the session's lock, and ends while the task waits for it;
    /// the holder lets go once that request has ended (or, with <paramref name="holdUntilTheTaskIsDone"/>, once the task
    /// is done). Checks that no event was raised and that the lock is free afterwards; returns what the task saw, or the
    /// exception it got.
    /// </summary>
    private static async Task<string> UseFromABackgroundTaskWhileAnotherRequestHoldsTheLockAsync(
        SessionLockMode mode, Func<ISession, Task<string>> use, bool holdUntilTheTaskIsDone = false, Action<AsmSessionOptions>? configure = null)
    {
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var queued = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var used = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var events = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a =>
            {
                MapIncrement(a);
                a.MapPost("/hold", async (HttpContext c) =>
                {
                    await c.Session.LoadAsync();
                    held.SetResult();
                    await (holdUntilTheTaskIsDone ? used.Task : release.Task);
                });
                a.MapPost("/later", async (HttpContext c) =>
                {
                    var session = c.Session;
                    if (mode != SessionLockMode.Exclusive)
                    {
                        await session.LoadAsync();
                    }

                    _ = Task.Run(async () =>
                    {
                        try
                        {
                            used.SetResult(await use(session));
                        }
                        catch (Exception e)
                        {
                            used.SetResult($"{e.GetType().Name}: {e.Message}");
                        }
                    });
                    await queued.Task;
                    return "ok";
                }).WithSessionLock(mode);
            },
            o =>
            {
                o.LockWaitTimeout = TimeSpan.FromMinutes(1);
                o.Events.OnInvalidSessionAccessed = e =>
                {
                    events.Enqueue(e.Reason.ToString());
                    return Task.CompletedTask;
                };
                o.Events.OnProfileChanged = _ =>
                {
                    events.Enqueue("profile changed");
                    return Task.CompletedTask;
                };
                configure?.Invoke(o);
            });
        var client = app.CreateClient();
        Assert.Equal("1", await (await client.PostAsync("/inc", null)).Content.ReadAsStringAsync());

        var holding = client.PostAsync("/hold", null);
        await held.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var later = client.PostAsync("/later", null);
        await app.WhenQueuedForLock(1).WaitAsync(TimeSpan.FromSeconds(30));
        queued.SetResult();
        Assert.Equal("ok", await (await later).Content.ReadAsStringAsync());
        release.SetResult();
        var outcome = await used.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.OK, (await holding).StatusCode);

        Assert.Empty(events);
        Assert.Equal("2", await (await client.PostAsync("/inc", null)).Content.ReadAsStringAsync());
        Assert.Equal(0, app.LockQueueSessions);
        return outcome;
    }

    [Theory]
    [InlineData(SessionLockMode.Exclusive)]
    [InlineData(SessionLockMode.LockOnWrite)]
    [InlineData(SessionLockMode.Lockless)]
    public async Task RequestAbortedDuringAnExplicitCommit_WritesNothingAndLeavesTheSessionUnlocked(SessionLockMode mode)
    {
        ChaosSessionDriver? storage = null;
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a =>
            {
                MapIncrement(a);
                a.MapPost("/set-and-commit", async (HttpContext c) =>
                {
                    await c.Session.LoadAsync();
                    c.Session.SetInt32("n", 100);
                    c.Session.SetString("half", "written");
                    await c.Session.CommitAsync(c.RequestAborted);
                }).WithSessionLock(mode);
                a.MapGet("/read", (HttpContext c) => $"{c.Session.GetInt32("n")} {c.Session.GetString("half")}").WithSessionLock(SessionLockMode.ReadOnly);
            },
            // A lock left behind would hold the next request for its lease, then fail it at its lock wait.
            o =>
            {
                o.LockLease = TimeSpan.FromMinutes(5);
                o.LockWaitTimeout = TimeSpan.FromMinutes(1);
            },
            services: s => storage = ChaosSessionDriver.Wrap(s));
        var client = app.CreateClient();
        await client.PostAsync("/inc", null);

        using var abort = new CancellationTokenSource();
        storage!.HangCommits = true;
        var aborted = client.PostAsync("/set-and-commit", null, abort.Token);
        await storage.CommitHanging.Task.WaitAsync(TimeSpan.FromSeconds(30));
        storage.HangCommits = false;
        await abort.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => aborted);

        Assert.Equal("2", await (await client.PostAsync("/inc", null)).Content.ReadAsStringAsync());
        Assert.Equal("2 ", await client.GetStringAsync("/read"));
    }

    /// <summary>
    /// Starts an app on <c>TestServer</c> with the stock session (<paramref name="store"/> "stock", over the memory
    /// cache) or Asm ("asm", in memory), what <paramref name="services"/> adds, the stock <c>app.UseSession()</c> unless
    /// <paramref name="useSession"/> is false (<paramref name="map"/> then runs it where it wants), and what
    /// <paramref name="map"/> adds.
    /// </summary>
    internal static async Task<WebApplication> StartStockOrAsmAsync(
        string store, Action<WebApplication> map, bool useSession = true, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        if (store == "stock")
        {
            builder.Services.AddDistributedMemoryCache().AddSession();
        }
        else
        {
            builder.Services.AddAsmSession();
        }

        services?.Invoke(builder.Services);
        var app = builder.Build();
        if (useSession)
        {
            app.UseSession();
        }

        map(app);
        await app.StartAsync();
        return app;
    }

    /// <summary>Records the request's path in the session (<c>last</c>) from a <c>Response.OnStarting</c> callback.</summary>
    private static void RecordLastPageAsTheResponseStarts(HttpContext context) => context.Response.OnStarting(() =>
    {
        context.Session.SetString("last", context.Request.Path);
        return Task.CompletedTask;
    });

    /// <summary>Maps <c>POST /inc</c>: an Exclusive read-modify-write of <c>n</c>, answering the new count.</summary>
    private static void MapIncrement(WebApplication app) => app.MapPost("/inc", async (HttpContext c) =>
    {
        await c.Session.LoadAsync();
        var n = (c.Session.GetInt32("n") ?? 0) + 1;
        c.Session.SetInt32("n", n);
        return n;
    });

    private static string Outcome(Action action)
    {
        try
        {
            action();
            return "ok";
        }
        catch (Exception ex)
        {
            return ex.GetType().Name;
        }
    }

    /// <summary>Tells when the server has disposed a request's <see cref="HttpContext"/> (and uninitialized it, as it does to reuse it).</summary>
    private sealed class ContextDisposals
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<HttpContext, TaskCompletionSource> _disposals = new();

        public Task Of(HttpContext context) => Disposal(context).Task;

        public IHttpContextFactory Wrap(IHttpContextFactory inner) => new Factory(inner, this);

        private TaskCompletionSource Disposal(HttpContext context) =>
            _disposals.GetOrAdd(context, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

        private sealed class Factory(IHttpContextFactory inner, ContextDisposals disposals) : IHttpContextFactory
        {
            public HttpContext Create(Microsoft.AspNetCore.Http.Features.IFeatureCollection featureCollection) => inner.Create(featureCollection);

            public void Dispose(HttpContext httpContext)
            {
                // As the server does with its own factory's contexts, which it pools: the context forgets the request.
                inner.Dispose(httpContext);
                ((DefaultHttpContext)httpContext).Uninitialize();
                disposals.Disposal(httpContext).TrySetResult();
            }
        }
    }
}
