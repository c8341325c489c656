using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter.Tests.EndToEnd;

/// <summary>
/// The session cookie configured alike on the stock session (<c>AddSession(o =&gt; o.Cookie...)</c>) and on Asm
/// (<c>AddAsmSession(o =&gt; o.Cookie...)</c>): the <c>Set-Cookie</c> header (all but the protected key) and the
/// caching headers beside it are the stock session's byte for byte, over HTTP and HTTPS, with and without a
/// cookie-consent policy; where Asm differs, the test asserts what docs/getting-started.md says.
/// </summary>
public sealed partial class StockSessionCookieTests
{
    public static TheoryData<string, string> Cookies
    {
        get
        {
            string[] cookies = ["default", "name", "path", "domain", "samesite-strict", "samesite-none", "samesite-unspecified",
                "httponly-off", "secure-always", "secure-none", "secure-same-as-request", "essential", "max-age", "extensions"];
            var data = new TheoryData<string, string>();
            foreach (var cookie in cookies)
            {
                data.Add(cookie, "http");
                data.Add(cookie, "https");
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cookies))]
    public async Task SetCookie_ConfiguredAlike_IsTheStockSessionsByteForByte(string cookie, string scheme)
    {
        var stock = await SetCookieAsync("stock", cookie, scheme);
        var asm = await SetCookieAsync("asm", cookie, scheme);

        if (!cookie.StartsWith("secure-", StringComparison.Ordinal) && scheme == "https")
        {
            // Asm's default SecurePolicy is SameAsRequest, the stock session's None: over HTTPS Asm's cookie is Secure
            // (docs/getting-started.md).
            Assert.DoesNotContain("; secure", stock, StringComparison.Ordinal);
            Assert.Equal(AfterPath().Replace(stock, "$1; secure"), asm);
        }
        else
        {
            Assert.Equal(stock, asm);
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public async Task SetCookie_UnderACookieConsentPolicy_IsWrittenWhenTheStockSessionsIs(bool essential, bool consented)
    {
        async Task<string> WithPolicyAsync(string store) => await SetCookieAsync(store, essential ? "essential" : "default", "http", consentNeeded: true, consented);

        var stock = await WithPolicyAsync("stock");

        Assert.Equal(stock, await WithPolicyAsync("asm"));
        Assert.Equal(essential || consented, stock.Contains("Set-Cookie", StringComparison.Ordinal));
    }

    [Fact]
    public async Task CookieExpiration_IsRefused_AsTheStockSessionRefusesIt()
    {
        var stock = Assert.Throws<InvalidOperationException>(() => new SessionOptions().Cookie.Expiration = TimeSpan.FromHours(1));
        Assert.Equal("Expiration cannot be set for the cookie defined by SessionOptions", stock.Message);

        // Asm's cookie is a plain CookieBuilder, so the setter takes it; the app fails at start-up naming it.
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Services.AddAsmSession(o => o.Cookie.Expiration = TimeSpan.FromHours(1));
        await using var app = builder.Build();
        var thrown = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("AsmSessionOptions.Cookie.Expiration", thrown.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("default")]
    [InlineData("domain")]
    [InlineData("max-age")]
    [InlineData("extensions")]
    public async Task CookieNotAdopted_IsDeletedWithTheAttributesItWasSetWith(string cookie)
    {
        // The stock session never deletes its cookie; Asm deletes one it does not adopt (docs/lifetime.md). The delete
        // must match what set the cookie (name, path, domain) and expire it: a Max-Age left in it would win over the
        // past Expires, and the browser would keep the cookie.
        await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(
            "asm", a => a.MapGet("/read", (HttpContext c) => c.Session.GetString("a") ?? "<none>"),
            services: s => s.Configure<AsmSessionOptions>(o => Configure(cookie, o.Cookie)));
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://localhost/read");
        request.Headers.Add("Cookie", $"{AsmSessionOptions.DefaultCookieName}=garbage");

        var deleted = Assert.Single((await app.GetTestClient().SendAsync(request)).Headers.GetValues("Set-Cookie"));

        Assert.StartsWith($"{AsmSessionOptions.DefaultCookieName}=; expires=Thu, 01 Jan 1970 00:00:00 GMT", deleted, StringComparison.Ordinal);
        Assert.DoesNotContain("max-age", deleted, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(cookie == "domain", deleted.Contains("; domain=example.com", StringComparison.Ordinal));
        Assert.Contains("; path=/", deleted, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Configure<SessionOptions> before", "IdleTimeout, Cookie.Name, Cookie.Path, Cookie.SameSite")]
    [InlineData("Configure<SessionOptions> after", "IdleTimeout, Cookie.Name, Cookie.Path, Cookie.SameSite")]
    [InlineData("AddSession before", "IdleTimeout, Cookie.Name, Cookie.Path, Cookie.SameSite")]
    [InlineData("AddSession after", "IdleTimeout, Cookie.Name, Cookie.Path, Cookie.SameSite")]
    [InlineData("AddSession alike", null)]
    [InlineData("none", null)]
    public async Task SessionOptionsSetBesideAsm_AreNotUsed_AndAWarningNamesThose(string how, string? named)
    {
        // An app that kept its stock configuration (a section bound to SessionOptions, an AddSession line) beside
        // AddAsmSession: Asm's cookie and timeouts are AsmSessionOptions' (docs/getting-started.md), and it says so.
        var logs = new FakeLogCollector();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders().AddProvider(new FakeLoggerProvider(logs));
        static void Stock(SessionOptions o)
        {
            (o.IdleTimeout, o.IOTimeout) = (TimeSpan.FromHours(1), TimeSpan.FromMinutes(2));
            (o.Cookie.Name, o.Cookie.Path, o.Cookie.SameSite) = ("legacy", "/legacy", SameSiteMode.Strict);
        }

        void Add(string when)
        {
            switch (how)
            {
                case var _ when !how.EndsWith(when, StringComparison.Ordinal):
                    break;
                case var _ when how.StartsWith("Configure", StringComparison.Ordinal):
                    builder.Services.Configure<SessionOptions>(Stock);
                    break;
                default:
                    builder.Services.AddSession(Stock);
                    break;
            }
        }

        Add("before");
        builder.Services.AddAsmSession(o =>
        {
            o.IOTimeout = TimeSpan.FromMinutes(2);
            if (how == "AddSession alike")
            {
                (o.IdleTimeout, o.Cookie.Name, o.Cookie.Path, o.Cookie.SameSite) = (TimeSpan.FromHours(1), "legacy", "/legacy", SameSiteMode.Strict);
            }
        });
        Add("after");
        if (how == "AddSession alike")
        {
            builder.Services.AddSession(Stock);
        }

        await using var app = builder.Build();
        app.UseSession();
        app.MapPost("/{**path}", (HttpContext c) => c.Session.SetString("a", "b"));
        await app.StartAsync();

        var cookie = Assert.Single((await app.GetTestClient().PostAsync("/legacy/set", null)).Headers.GetValues("Set-Cookie"));

        var warnings = logs.GetSnapshot().Where(r => r.Id.Id == 71).Select(r => r.Message).ToList();
        if (named is null)
        {
            Assert.Empty(warnings);
        }
        else
        {
            Assert.Equal(
                $"SessionOptions sets {named}, which Asm's session does not use: it takes its cookie and timeouts from AsmSessionOptions. " +
                "Set them there (AddAsmSession(o => ...) or Configure<AsmSessionOptions>).", Assert.Single(warnings));
            Assert.StartsWith($"{AsmSessionOptions.DefaultCookieName}=", cookie, StringComparison.Ordinal);
            Assert.Contains("; path=/; samesite=lax", cookie, StringComparison.Ordinal);
            Assert.Equal(TimeSpan.FromMinutes(20), app.Services.GetRequiredService<IOptions<SessionOptions>>().Value.IdleTimeout);
        }
    }

    private static void Configure(string cookie, CookieBuilder builder)
    {
        switch (cookie)
        {
            case "name":
                builder.Name = "app.sid";
                break;
            case "path":
                builder.Path = "/app";
                break;
            case "domain":
                builder.Domain = "example.com";
                break;
            case "samesite-strict":
                builder.SameSite = SameSiteMode.Strict;
                break;
            case "samesite-none":
                builder.SameSite = SameSiteMode.None;
                break;
            case "samesite-unspecified":
                builder.SameSite = SameSiteMode.Unspecified;
                break;
            case "httponly-off":
                builder.HttpOnly = false;
                break;
            case "secure-always":
                builder.SecurePolicy = CookieSecurePolicy.Always;
                break;
            case "secure-none":
                builder.SecurePolicy = CookieSecurePolicy.None;
                break;
            case "secure-same-as-request":
                builder.SecurePolicy = CookieSecurePolicy.SameAsRequest;
                break;
            case "essential":
                builder.IsEssential = true;
                break;
            case "max-age":
                builder.MaxAge = TimeSpan.FromHours(2);
                break;
            case "extensions":
                builder.Extensions.Add("partitioned");
                builder.Extensions.Add("priority=high");
                break;
        }
    }

    /// <summary>
    /// The headers of a response that stores a new session: <c>Set-Cookie</c> with the protected key left out,
    /// <c>Cache-Control</c>, <c>Pragma</c> and <c>Expires</c>.
    /// </summary>
    private static async Task<string> SetCookieAsync(string store, string cookie, string scheme, bool consentNeeded = false, bool consented = false)
    {
        // Configure<SessionOptions> is what AddSession(o => ...) does; the cookie policy wraps the cookies the session writes.
        await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a =>
        {
            if (consentNeeded)
            {
                a.UseCookiePolicy();
            }

            a.UseSession();
            a.MapPost("/{**path}", (HttpContext c) => c.Session.SetString("a", "b"));
        }, useSession: false, services: s =>
        {
            s.Configure<SessionOptions>(o => Configure(cookie, o.Cookie));
            s.Configure<AsmSessionOptions>(o => Configure(cookie, o.Cookie));
            s.Configure<CookiePolicyOptions>(o => o.CheckConsentNeeded = _ => consentNeeded);
        });
        using var client = app.GetTestClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{scheme}://localhost{(cookie == "path" ? "/app/set" : "/set")}");
        if (consented)
        {
            request.Headers.Add("Cookie", ".AspNet.Consent=yes");
        }

        var response = await client.SendAsync(request);
        response.EnsureSuccessStatusCode();
        var headers = response.Headers.Concat(response.Content.Headers)
            .Where(h => h.Key is "Set-Cookie" or "Cache-Control" or "Pragma" or "Expires")
            .OrderBy(h => h.Key, StringComparer.Ordinal)
            .Select(h => $"{h.Key}: {string.Join(" | ", h.Value.Select(v => KeyValue().Replace(v, "$1=<key>")))}");
        return string.Join(Environment.NewLine, headers);
    }

    /// <summary>A cookie's path attribute, after which <c>secure</c> is written.</summary>
    [GeneratedRegex("(; path=[^;]*)")]
    private static partial Regex AfterPath();

    /// <summary>A cookie's name and value, up to the first attribute.</summary>
    [GeneratedRegex("^([^=]+)=[^;]*")]
    private static partial Regex KeyValue();
}
