using System.Net;
using System.Text;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Hostile;

/// <summary>
/// A flood of cookies that do not unprotect (forged, or sealed with another key ring) costs each request what it costs
/// the stock session: the cookie is unprotected once, by the session middleware, not a second time by Asm.
/// </summary>
public sealed class BadCookieFloodTests
{
    [Theory]
    [InlineData("garbage")]
    [InlineData("another key ring")]
    public async Task BadCookies_AreUnprotectedOncePerRequest(string kind)
    {
        var keys = new CountingDataProtectionProvider(new EphemeralDataProtectionProvider());
        await using var app = await SessionApp.StartAsync(b => b.UseInMemoryDriver(), a =>
        {
            a.MapGet("/read", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                return c.Session.GetString("v") ?? "";
            }).WithSessionLock(SessionLockMode.ReadOnly);
            a.MapPost("/write", (HttpContext c) => c.Session.SetString("v", "written"));
        }, services: s => s.AddSingleton<IDataProtectionProvider>(keys));
        // A well-formed key, sealed with a key ring this app does not have.
        var foreign = Convert.ToBase64String(new EphemeralDataProtectionProvider().CreateProtector("SessionMiddleware")
            .Protect(Encoding.UTF8.GetBytes("0123456789abcdefghijklmnopqrstuvwxyz"))).TrimEnd('=');
        using var client = new HttpClient(app.Server.CreateHandler()) { BaseAddress = new Uri("http://localhost/") };

        // A returning visitor first, as a live app has long before a flood: its first read tells the store that the
        // middleware reads Asm's cookie (AsmSessionStore); from then on a read unprotects its cookie once.
        using var visitor = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await visitor.PostAsync("/write", null)).StatusCode);
        Assert.Equal("written", await visitor.GetStringAsync("/read"));
        var before = keys.Unprotects;
        Assert.Equal("written", await visitor.GetStringAsync("/read"));
        Assert.Equal(1, keys.Unprotects - before);

        before = keys.Unprotects;
        for (var i = 0; i < 20; i++)
        {
            var cookie = kind == "garbage" ? Convert.ToBase64String(Encoding.UTF8.GetBytes($"forged {i}")).TrimEnd('=') : foreign;
            using var request = new HttpRequestMessage(HttpMethod.Get, "/read");
            request.Headers.Add("Cookie", $"{AsmSessionOptions.DefaultCookieName}={cookie}");
            var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(20, keys.Unprotects - before);
    }

    [Fact]
    public async Task AVisitorSendingOtherCookiesToo_TellsTheStoreThatTheMiddlewareReadsAsmsCookie()
    {
        // A browser sends the app's other cookies (sign-in, analytics) with the session's: the store still learns that
        // the middleware reads Asm's cookie, and a read unprotects it once.
        var keys = new CountingDataProtectionProvider(new EphemeralDataProtectionProvider());
        await using var app = await SessionApp.StartAsync(b => b.UseInMemoryDriver(), a =>
        {
            a.MapGet("/read", (HttpContext c) => c.Session.GetString("v") ?? "");
            a.MapPost("/write", (HttpContext c) => c.Session.SetString("v", "written"));
        }, services: s => s.AddSingleton<IDataProtectionProvider>(keys));
        using var visitor = app.CreateClient(out var jar);
        jar.Cookies.Add(new Uri("http://localhost/"), new Cookie("_ga", "GA1.1.1234567890.1234567890"));
        jar.Cookies.Add(new Uri("http://localhost/"), new Cookie("theme", "dark"));
        Assert.Equal(HttpStatusCode.OK, (await visitor.PostAsync("/write", null)).StatusCode);
        Assert.Equal("written", await visitor.GetStringAsync("/read"));

        var before = keys.Unprotects;
        Assert.Equal("written", await visitor.GetStringAsync("/read"));
        Assert.Equal(1, keys.Unprotects - before);
    }

    /// <summary>Counts the unprotects of every protector it creates.</summary>
    private sealed class CountingDataProtectionProvider(IDataProtectionProvider inner) : IDataProtectionProvider
    {
        private int _unprotects;

        public int Unprotects => Volatile.Read(ref _unprotects);

        public IDataProtector CreateProtector(string purpose) => new Protector(inner.CreateProtector(purpose), this);

        private sealed class Protector(IDataProtector inner, CountingDataProtectionProvider counts) : IDataProtector
        {
            public IDataProtector CreateProtector(string purpose) => new Protector(inner.CreateProtector(purpose), counts);

            public byte[] Protect(byte[] plaintext) => inner.Protect(plaintext);

            public byte[] Unprotect(byte[] protectedData)
            {
                Interlocked.Increment(ref counts._unprotects);
                return inner.Unprotect(protectedData);
            }
        }
    }
}
