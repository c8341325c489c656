using System.Text;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Asm.SessionAdapter.Tests.Import;

/// <summary>
/// An app on the stock <c>AddSession()</c> (the one being swapped out), and the routes every app of these tests maps:
/// the stock app and the Asm apps answer the same requests.
/// </summary>
internal sealed class StockApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private StockApp(WebApplication app) => _app = app;

    public IServiceProvider Services => _app.Services;

    /// <summary>Starts a stock-session app whose <c>IDistributedCache</c> <paramref name="cache"/> registers.</summary>
    public static async Task<StockApp> StartAsync(Action<IServiceCollection> cache, IServiceProvider? shareDataProtectionWith = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        cache(builder.Services);
        builder.Services.AddSession();
        if (shareDataProtectionWith is not null)
        {
            SessionApp.ShareDataProtection(builder.Services, shareDataProtectionWith);
        }

        var app = builder.Build();
        app.UseSession();
        MapRoutes(app);
        await app.StartAsync();
        return new StockApp(app);
    }

    /// <summary>
    /// <c>POST /set?name=&amp;value=</c> stores a string, <c>GET /get?name=</c> reads it ("-" when absent; also
    /// <c>/get-readonly</c>, in <see cref="SessionLockMode.ReadOnly"/>),
    /// <c>POST /inc</c> adds one to the counter "n" and returns it, <c>GET /keys</c> lists the names,
    /// <c>POST /login</c> (Asm only) stores the user "alice" and regenerates the key.
    /// </summary>
    public static void MapRoutes(WebApplication app)
    {
        app.MapPost("/set", async (HttpContext c, string name, string value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString(name, value);
        });
        app.MapGet("/get", async (HttpContext c, string name) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString(name) ?? "-";
        });
        app.MapGet("/get-readonly", async (HttpContext c, string name) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString(name) ?? "-";
        }).WithSessionLock(SessionLockMode.ReadOnly);
        app.MapPost("/inc", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            c.Session.SetInt32("n", n);
            return n;
        });
        app.MapGet("/keys", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return string.Join(",", c.Session.Keys.Order(StringComparer.Ordinal));
        });
        app.MapPost("/login", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("user", "alice");
            await c.Session.RegenerateIdAsync();
        });
    }

    /// <summary>A client that keeps cookies in <paramref name="jar"/>.</summary>
    public HttpClient CreateClient(out CookieJarHandler jar)
    {
        jar = new CookieJarHandler(_app.GetTestServer().CreateHandler());
        return new HttpClient(jar) { BaseAddress = new Uri("http://localhost/") };
    }

    /// <summary>The session key inside a session cookie, unprotected as the stock middleware does it.</summary>
    public static string KeyOf(IServiceProvider services, CookieJarHandler jar)
    {
        var cookie = Uri.UnescapeDataString(jar.Cookies.GetCookies(new Uri("http://localhost/"))[AsmSessionOptions.DefaultCookieName]!.Value);
        var padded = cookie.PadRight(cookie.Length + ((4 - (cookie.Length % 4)) % 4), '=');
        var protector = services.GetRequiredService<IDataProtectionProvider>().CreateProtector("SessionMiddleware");
        return Encoding.UTF8.GetString(protector.Unprotect(Convert.FromBase64String(padded)));
    }

    /// <summary>A session cookie value carrying <paramref name="key"/>, protected as the stock middleware does it.</summary>
    public static string CookieFor(IServiceProvider services, string key)
    {
        var protector = services.GetRequiredService<IDataProtectionProvider>().CreateProtector("SessionMiddleware");
        return Uri.EscapeDataString(Convert.ToBase64String(protector.Protect(Encoding.UTF8.GetBytes(key))).TrimEnd('='));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
