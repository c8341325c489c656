using System.Net;
using Asm.Caching.Drivers.InMemory;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter.Tests.EndToEnd;

/// <summary>
/// How the session store learns its request without an <see cref="IHttpContextAccessor"/>, whose registration makes
/// ASP.NET Core allocate every request a new <see cref="HttpContext"/>.
/// </summary>
public sealed class SessionRequestContextTests
{
    [Fact]
    public async Task OnKestrel_KeepAliveRequestsReuseTheConnectionsHttpContext_AndTheSessionCounts()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddAsmSession();
        await using var app = builder.Build();
        app.UseSession();
        var contexts = new List<HttpContext>();
        app.MapPost("/inc", async (HttpContext c) =>
        {
            contexts.Add(c);
            await c.Session.LoadAsync();
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            c.Session.SetInt32("n", n);
            return n;
        });
        await app.StartAsync();
        using var client = new HttpClient(new SocketsHttpHandler { CookieContainer = new CookieContainer(), MaxConnectionsPerServer = 1 })
        {
            BaseAddress = new Uri(app.Urls.First()),
        };

        var counts = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            counts.Add(await (await client.PostAsync("/inc", null)).Content.ReadAsStringAsync());
        }

        Assert.Equal(["1", "2", "3"], counts);
        Assert.Null(app.Services.GetService<IHttpContextAccessor>());
        Assert.Equal(3, contexts.Count);
        Assert.All(contexts, c => Assert.Same(contexts[0], c));
    }

    [Theory]
    [InlineData("stock")]
    [InlineData("asm")]
    public async Task ErrorPageReExecutedThroughTheSessionMiddleware_HasTheSession(string store)
    {
        // The error page runs the rest of the pipeline again, the session middleware included, after its first pass
        // made the final commit of the request's first session.
        await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a =>
        {
            a.UseExceptionHandler("/error");
            a.UseSession();
            a.MapPost("/fail", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                c.Session.SetString("v", "set before the failure");
                throw new InvalidOperationException("The endpoint failed.");
            });
            a.MapPost("/error", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                return $"error page, session holds: {c.Session.GetString("v") ?? "nothing"}";
            });
        }, useSession: false);
        using var client = new HttpClient(new CookieJarHandler(app.GetTestServer().CreateHandler())) { BaseAddress = new Uri("http://localhost/") };
        await client.PostAsync("/error", null); // a session to come back with

        var response = await client.PostAsync("/fail", null);

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("error page, session holds: nothing", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AppsOwnStartupFilterThatRunsTheSessionMiddleware_RegisteredBeforeAddAsmSession_Works()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Services.AddSingleton<IStartupFilter, SessionFirstFilter>();
        builder.Services.AddAsmSession();
        await using var app = builder.Build();
        app.MapPost("/inc", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            c.Session.SetInt32("n", n);
            return n;
        });
        await app.StartAsync();
        using var client = new HttpClient(new CookieJarHandler(app.GetTestServer().CreateHandler())) { BaseAddress = new Uri("http://localhost/") };

        var counts = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            counts.Add(await (await client.PostAsync("/inc", null)).Content.ReadAsStringAsync());
        }

        Assert.Equal(["1", "2"], counts);
    }

    [Fact]
    public async Task PipelineBuiltByHandInsideARequest_WithTheAppsAccessorOnItsOwnContext_GetsItsOwnSession()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Services.AddAsmSession();
        builder.Services.AddHttpContextAccessor();
        await using var app = builder.Build();
        app.UseSession();
        app.MapPost("/outer", async (HttpContext c, IHttpContextAccessor accessor, ISessionStore store) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("who", "outer");
            var inner = new DefaultHttpContext { RequestServices = c.RequestServices };
            accessor.HttpContext = inner;
            var session = store.Create("", TimeSpan.FromMinutes(20), TimeSpan.FromMinutes(1), () => true, isNewSessionKey: true);
            accessor.HttpContext = c;
            await session.LoadAsync();
            return $"same={ReferenceEquals(session, c.Session)} who={session.GetString("who") ?? "none"}";
        });
        await app.StartAsync();

        var answer = await (await app.GetTestServer().CreateClient().PostAsync("/outer", null)).Content.ReadAsStringAsync();

        Assert.Equal("same=False who=none", answer);
    }

    /// <summary>An app's own startup filter whose pipeline runs the session middleware before anything else.</summary>
    private sealed class SessionFirstFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.UseSession();
            next(app);
        };
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PipelineBuiltByHand_UsesTheAppsOwnAccessor_OrFailsSayingWhy(bool appRegistersAnAccessor)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddDataProtection().UseEphemeralDataProtectionProvider();
        services.AddAsmSession();
        if (appRegistersAnAccessor)
        {
            services.AddHttpContextAccessor();
        }

        await using var provider = services.BuildServiceProvider();
        var middleware = new SessionMiddleware(
            async c =>
            {
                await c.Session.LoadAsync();
                c.Session.SetString("v", "1");
            },
            provider.GetRequiredService<ILoggerFactory>(),
            provider.GetRequiredService<IDataProtectionProvider>(),
            provider.GetRequiredService<ISessionStore>(),
            provider.GetRequiredService<IOptions<SessionOptions>>());
        var context = new DefaultHttpContext { RequestServices = provider };
        provider.GetService<IHttpContextAccessor>()?.HttpContext = context;

        var invoked = await Record.ExceptionAsync(() => middleware.Invoke(context));

        if (appRegistersAnAccessor)
        {
            Assert.Null(invoked);
            Assert.Equal(1, provider.GetRequiredService<InMemoryDriver>().Count); // the session was made and stored
        }
        else
        {
            var thrown = Assert.IsType<InvalidOperationException>(invoked);
            Assert.Contains("startup filter", thrown.Message, StringComparison.Ordinal);
        }
    }
}
