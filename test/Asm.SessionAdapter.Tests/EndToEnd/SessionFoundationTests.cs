using System.Net;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.EndToEnd;

/// <summary>The drop-in session, end to end through the stock <c>app.UseSession()</c>, on every driver.</summary>
public abstract class SessionFoundationTests<TDriver>(TDriver driver) : IClassFixture<TDriver>
    where TDriver : class, IDriverFixture
{
    private readonly string _scope = Guid.NewGuid().ToString("N");
    private readonly List<InvalidSessionReason> _invalid = [];

    protected TDriver Driver { get; } = driver;

    [Fact]
    public async Task ValuesPersistAcrossRequests()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();

        await client.PostAsync("/set/name/ada", null);
        await client.PostAsync("/set/role/admin", null);

        Assert.Equal("ada", await client.GetStringAsync("/get/name"));
        Assert.Equal("admin", await client.GetStringAsync("/get/role"));
    }

    [Fact]
    public async Task ReadingEmptySessionDoesNotCreateCookie()
    {
        await using var app = await StartAsync();
        var response = await app.CreateClient().GetAsync("/get/name");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("Set-Cookie"));
    }

    [Fact]
    public async Task WritingSessionSetsCookieWithSafeDefaults()
    {
        await using var app = await StartAsync();
        var response = await app.CreateClient().PostAsync("/set/name/ada", null);

        var cookie = Assert.Single(response.Headers.GetValues("Set-Cookie"));
        Assert.StartsWith(".AspNetCore.Session=", cookie);
        Assert.Contains("path=/", cookie);
        Assert.Contains("samesite=lax", cookie);
        Assert.Contains("httponly", cookie);
        Assert.DoesNotContain("secure", cookie);
        Assert.True(response.Headers.CacheControl is { NoCache: true, NoStore: true });
    }

    [Fact]
    public async Task HostPrefixOption_NamesTheCookieHostAndMakesItSecure()
    {
        await using var app = await StartAsync(o => o.UseHostPrefix = true);
        var client = app.CreateClient();
        client.BaseAddress = new Uri("https://localhost/");

        var response = await client.PostAsync("/set/name/ada", null);

        var cookie = Assert.Single(response.Headers.GetValues("Set-Cookie"));
        Assert.StartsWith("__Host-.AspNetCore.Session=", cookie);
        Assert.Contains("secure", cookie);
        Assert.DoesNotContain("domain", cookie);
        Assert.Equal("ada", await client.GetStringAsync("/get/name"));
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("CfDJ8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("%00%00../../etc/passwd")]
    public async Task MalformedCookie_GetsAFreshSessionAndOneMalformedEvent(string cookie)
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        client.DefaultRequestHeaders.Add("Cookie", $".AspNetCore.Session={cookie}");

        var response = await client.PostAsync("/set/name/ada", null);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal([InvalidSessionReason.Malformed], _invalid);
        Assert.DoesNotContain(cookie, Assert.Single(response.Headers.GetValues("Set-Cookie")));
    }

    [Fact]
    public async Task TamperedCookie_IsNeverAdopted()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient(out var jar);
        await client.PostAsync("/set/name/ada", null);
        var cookie = jar.Cookies.GetAllCookies().Single();
        var value = cookie.Value.ToCharArray();
        value[value.Length / 2] = value[value.Length / 2] == 'A' ? 'B' : 'A';
        cookie.Value = new string(value);

        Assert.Equal("", await client.GetStringAsync("/get/name"));
        Assert.Equal([InvalidSessionReason.Malformed], _invalid);
    }

    [Fact]
    public async Task UnknownKey_GetsAFreshSessionAndOneUnknownEvent()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient(out var jar);
        await client.PostAsync("/set/name/ada", null);
        var cookie = jar.Cookies.GetAllCookies().Single().Value;

        // The same cookie presented to another app on other storage: a well-formed key that nothing answers to.
        await using var other = await StartAsync(scope: Guid.NewGuid().ToString("N"), app.Services);
        var stranger = other.CreateClient();
        stranger.DefaultRequestHeaders.Add("Cookie", $".AspNetCore.Session={cookie}");

        Assert.Equal("", await stranger.GetStringAsync("/get/name"));
        Assert.Equal([InvalidSessionReason.Unknown], _invalid);
    }

    [Fact]
    public async Task IdleTimeout_ExpiresAnUnusedSession()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await using var app = await StartAsync(o => o.IdleTimeout = TimeSpan.FromMinutes(20), time);
        var client = app.CreateClient();
        await client.PostAsync("/set/name/ada", null);

        time.Advance(TimeSpan.FromMinutes(19));
        Assert.Equal("ada", await client.GetStringAsync("/get/name"));
        time.Advance(TimeSpan.FromMinutes(19));
        Assert.Equal("ada", await client.GetStringAsync("/get/name"));
        time.Advance(TimeSpan.FromMinutes(21));

        Assert.Equal("", await client.GetStringAsync("/get/name"));
        Assert.Equal([InvalidSessionReason.Expired], _invalid);
    }

    [Fact]
    public async Task IdleTimeout_AReadSlidesItOnlyByMoreThanASixteenth_SoAReadOnlySessionEndsAtMostThatMuchSooner()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await using var app = await StartAsync(o => o.IdleTimeout = TimeSpan.FromMinutes(16), time);
        var client = app.CreateClient();
        await client.PostAsync("/set/name/ada", null);                    // ends at 16:00

        time.Advance(TimeSpan.FromMinutes(15));
        Assert.Equal("ada", await client.GetStringAsync("/get/name"));    // 15:00: slid to 31:00
        time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal("ada", await client.GetStringAsync("/get/name"));    // 15:59: 59 s is less than a sixteenth (60 s), kept
        time.Advance(TimeSpan.FromSeconds(15 * 60) + TimeSpan.FromSeconds(1));

        // 31:00, 15 min 1 s after the last read: more than 15/16 of IdleTimeout, less than all of it.
        Assert.Equal("", await client.GetStringAsync("/get/name"));
        Assert.Equal([InvalidSessionReason.Expired], _invalid);
    }

    [Fact]
    public async Task AbsoluteTimeout_ExpiresEvenAnActiveSession()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        await using var app = await StartAsync(o => o.AbsoluteTimeout = TimeSpan.FromHours(1), time);
        var client = app.CreateClient();
        await client.PostAsync("/set/name/ada", null);
        for (var i = 0; i < 5; i++)
        {
            time.Advance(TimeSpan.FromMinutes(10));
            Assert.Equal("ada", await client.GetStringAsync("/get/name"));
        }

        time.Advance(TimeSpan.FromMinutes(11));

        Assert.Equal("", await client.GetStringAsync("/get/name"));
        Assert.Equal([InvalidSessionReason.Expired], _invalid);
    }

    [Fact]
    public async Task SessionIdIsStableAndKeysAreNeverLogged()
    {
        var logs = new FakeLogCollector();
        await using var app = await StartAsync(services: s => s.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs)));
        var client = app.CreateClient(out var jar);
        var id = await (await client.PostAsync("/set/name/ada", null)).Content.ReadAsStringAsync();
        Assert.Equal(id, await client.GetStringAsync("/id"));
        client.DefaultRequestHeaders.Add("Cookie", ".AspNetCore.Session=garbage");
        await client.GetStringAsync("/get/name");

        var messages = logs.GetSnapshot().Select(r => r.Message + r.Exception).ToList();
        Assert.NotEmpty(messages);
        Assert.DoesNotContain(messages, m => m.Contains(id, StringComparison.Ordinal));
        Assert.DoesNotContain(messages, m => m.Contains(jar.Cookies.GetAllCookies().Single().Value, StringComparison.Ordinal));
    }

    protected Task<SessionApp> StartAsync(
        Action<AsmSessionOptions>? configure = null, TimeProvider? time = null, Action<IServiceCollection>? services = null) =>
        StartAsync(_scope, null, configure, time, services);

    private Task<SessionApp> StartAsync(string scope, IServiceProvider? sharedKeysFrom, Action<AsmSessionOptions>? configure = null,
        TimeProvider? time = null, Action<IServiceCollection>? services = null) =>
        SessionApp.StartAsync(
            b => Driver.Use(b, scope),
            Map,
            o =>
            {
                o.Events.OnInvalidSessionAccessed = c =>
                {
                    lock (_invalid)
                    {
                        _invalid.Add(c.Reason);
                    }

                    return Task.CompletedTask;
                };
                configure?.Invoke(o);
            },
            time,
            s =>
            {
                if (sharedKeysFrom is not null)
                {
                    SessionApp.ShareDataProtection(s, sharedKeysFrom);
                }

                services?.Invoke(s);
            });

    private static void Map(WebApplication app)
    {
        app.MapPost("/set/{name}/{value}", (HttpContext c, string name, string value) =>
        {
            c.Session.SetString(name, value);
            return c.Session.Id;
        });
        app.MapGet("/get/{name}", (HttpContext c, string name) => c.Session.GetString(name) ?? "");
        app.MapGet("/id", (HttpContext c) => c.Session.Id);
    }
}
