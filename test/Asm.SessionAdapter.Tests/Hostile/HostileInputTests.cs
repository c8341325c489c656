using System.Net;
using System.Text;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using CsCheck;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Hostile;

/// <summary>
/// Property-based tests with hostile input, through real requests on each driver: random cookies, random value names
/// and values, and stored records damaged at every byte (a session file) or in every field (a Redis hash). The
/// outcome is always the session, a fresh session or a clear error: never a 500, a hang, or a file outside the
/// directory. Inputs come from fixed seeds (the same every run); a failure names the seed that reproduces it.
/// </summary>
public abstract class HostileInputTests<TDriver>(TDriver driver) : IClassFixture<TDriver>
    where TDriver : class, IDriverFixture
{
    /// <summary>The PCG stream of the fixed seeds; case i uses seed i of it.</summary>
    private const uint SeedStream = 15;

    /// <summary>Each request must be answered within this, or it counts as a hang.</summary>
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(30);

    protected TDriver Driver => driver;

    /// <summary>Cookies: random bytes as Latin-1, random Unicode, near-valid Data Protection payloads; 0 to 10,000 chars.</summary>
    private static Gen<string> Cookies { get; } = Gen.OneOf(
        Gen.Byte.Array[0, 10_000].Select(b => Encoding.Latin1.GetString(b)),
        Gen.String[Gen.Char, 0, 2_000],
        Gen.String[Gen.Char["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"], 0, 10_000].Select(s => "CfDJ8" + s));

    private static readonly string[] FixedNames = ["", " ", "../../etc/passwd", "a\0b", "\r\n", "fmt", "c", "lk", "ключ-鍵-🔑", new string('n', 10_000)];

    /// <summary>Value names: random Unicode of 0 to 300 chars, and path-like or control-character names.</summary>
    private static Gen<string> Names { get; } = Gen.OneOf(
        Gen.String[Gen.Char, 0, 300],
        Gen.Int[0, FixedNames.Length - 1].Select(i => FixedNames[i]));

    [Fact]
    public async Task RandomCookies_AlwaysAFreshSessionNeverAnError()
    {
        await using var app = await StartAsync(Guid.NewGuid().ToString("N"));

        await ForEachSeedAsync(60, Cookies, async cookie =>
        {
            using var client = new HttpClient(app.Server.CreateHandler()) { BaseAddress = new Uri("http://localhost/") };
            var clean = new string(cookie.Where(c => c is not ('\r' or '\n' or '\0')).ToArray());
            foreach (var (method, path) in new[] { (HttpMethod.Get, "/read"), (HttpMethod.Post, "/write") })
            {
                using var request = new HttpRequestMessage(method, path);
                request.Headers.TryAddWithoutValidation("Cookie", $".AspNetCore.Session={clean}");
                using var timeout = new CancellationTokenSource(Hang);
                var response = await client.SendAsync(request, timeout.Token);

                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal(path == "/read" ? "" : "written", await response.Content.ReadAsStringAsync(timeout.Token));
            }
        });
    }

    [Fact]
    public async Task RandomValueNamesAndValues_ReadBackExactlyOrRefusedClearly()
    {
        await using var app = await StartAsync(Guid.NewGuid().ToString("N"));
        var client = app.CreateClient();
        var values = Gen.Select(Names, Gen.Byte.Array[0, 100_000]);

        await ForEachSeedAsync(60, values, async pair =>
        {
            var (name, value) = pair;
            using var timeout = new CancellationTokenSource(Hang);
            using var set = new HttpRequestMessage(HttpMethod.Post, "/set") { Content = new ByteArrayContent(value) };
            set.Headers.TryAddWithoutValidation("X-Name", "n:" + Convert.ToBase64String(Encoding.UTF8.GetBytes(name)));
            var stored = await client.SendAsync(set, timeout.Token);
            if (stored.StatusCode == HttpStatusCode.BadRequest)
            {
                // Refused by the name rules, saying so.
                Assert.Contains("name", await stored.Content.ReadAsStringAsync(timeout.Token), StringComparison.OrdinalIgnoreCase);
                return;
            }

            Assert.Equal(HttpStatusCode.OK, stored.StatusCode);
            using var get = new HttpRequestMessage(HttpMethod.Get, "/get");
            get.Headers.TryAddWithoutValidation("X-Name", "n:" + Convert.ToBase64String(Encoding.UTF8.GetBytes(name)));
            var read = await client.SendAsync(get, timeout.Token);
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            Assert.Equal(value, await read.Content.ReadAsByteArrayAsync(timeout.Token));
        });
    }

    /// <summary>Starts an app on <paramref name="scope"/> with the endpoints the properties use.</summary>
    protected Task<SessionApp> StartAsync(string scope) => SessionApp.StartAsync(b => driver.Use(b, scope), Map);

    /// <summary>
    /// Runs <paramref name="property"/> on <paramref name="count"/> inputs, input i drawn from fixed seed i; a failure
    /// is rethrown naming its seed (<c>CsCheck_Seed</c>).
    /// </summary>
    protected static async Task ForEachSeedAsync<T>(int count, Gen<T> gen, Func<T, Task> property)
    {
        for (var i = 0; i < count; i++)
        {
            var seed = new PCG(SeedStream, (ulong)i).ToString();
            await Check.SampleAsync(gen, property, seed: seed, iter: 1, threads: 1);
        }
    }

    /// <summary>A GET of <c>/read</c> (read-only, so it never waits for a lock): answered 200 in time; returns the value.</summary>
    protected static async Task<string> ReadAsync(HttpClient client)
    {
        using var timeout = new CancellationTokenSource(Hang);
        var response = await client.GetAsync("/read", timeout.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync(timeout.Token);
    }

    /// <summary>The endpoints the properties use.</summary>
    protected static void Map(WebApplication app)
    {
        app.MapGet("/read", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString("v") ?? "";
        }).WithSessionLock(SessionLockMode.ReadOnly);
        app.MapPost("/write", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("v", "written");
            return "written";
        });
        app.MapPost("/set", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            using var body = new MemoryStream();
            await c.Request.Body.CopyToAsync(body);
            try
            {
                c.Session.Set(NameOf(c), body.ToArray());
            }
            catch (ArgumentException e)
            {
                return Results.BadRequest(e.Message);
            }

            await c.Session.CommitAsync();
            return Results.Ok();
        });
        app.MapGet("/get", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.TryGetValue(NameOf(c), out var value) ? Results.Bytes(value) : Results.NotFound();
        });
    }

    private static string NameOf(HttpContext c) => Encoding.UTF8.GetString(Convert.FromBase64String(c.Request.Headers["X-Name"].ToString()[2..]));
}
