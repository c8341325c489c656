using System.Collections.Concurrent;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter.Tests.Encryption;

/// <summary>
/// <c>EncryptAtRest</c> switched on or off during a deploy: instances with and without it meet the same cookies. On
/// one storage they misread each other's records; the encryption page's procedure, a storage of its own for the new
/// setting, keeps every instance to records it can read.
/// </summary>
public sealed class EncryptAtRestSwitchTests(FileSystemDriverFixture files, RedisDriverFixture redis)
    : IClassFixture<FileSystemDriverFixture>, IClassFixture<RedisDriverFixture>
{
    private readonly ConcurrentQueue<InvalidSessionReason> _invalid = new();

    [Theory]
    [InlineData("filesystem")]
    [InlineData("redis")]
    public async Task OnOneStorage_WithItReportsPlainSessionsCorrupt_AndWithoutItReadsCiphertextAsValues(string driver)
    {
        var scope = $"switch-one-{driver}-{Guid.NewGuid():N}";
        await using var plain = await StartAsync(driver, scope, encrypt: false);
        await using var encrypting = await StartAsync(driver, scope, encrypt: true, sharing: plain);

        // Written without encryption, read with it: the plain value does not open, as a value forged at rest.
        var first = Browser(plain, encrypting);
        await first.Post(plain, "/set/ada");
        Assert.Equal("", await first.Get(encrypting));
        Assert.Equal([InvalidSessionReason.Corrupt], _invalid);

        // Written with encryption, read without it: the ciphertext is handed to the app as the value.
        var second = Browser(plain, encrypting);
        await second.Post(encrypting, "/set/bob");
        var misread = await second.Get(plain);
        Assert.NotEqual("bob", misread);
        Assert.NotEqual("", misread);
    }

    [Theory]
    [InlineData("filesystem")]
    [InlineData("redis")]
    public async Task SwitchedWithAStorageOfItsOwn_NeitherSettingReadsTheOthersSessions_EachGivesAFreshOne(string driver)
    {
        var id = Guid.NewGuid().ToString("N");
        await using var plain = await StartAsync(driver, $"switch-before-{id}", encrypt: false);
        await using var encrypting = await StartAsync(driver, $"switch-after-{id}", encrypt: true, sharing: plain);

        // Switching on: a browser of an old instance reaches a new one, then goes back.
        var on = Browser(plain, encrypting);
        await on.Post(plain, "/set/ada");
        Assert.Equal("", await on.Get(encrypting));
        await on.Post(encrypting, "/set/bob");
        Assert.Equal("bob", await on.Get(encrypting));

        // Switching off (or a browser sent back to an old instance): the same, the other way round.
        Assert.Equal("", await on.Get(plain));
        await on.Post(plain, "/set/cy");
        Assert.Equal("cy", await on.Get(plain));

        Assert.Equal([InvalidSessionReason.Unknown, InvalidSessionReason.Unknown], _invalid);
    }

    private IDriverFixture Fixture(string driver) => driver == "redis" ? redis : files;

    private Task<SessionApp> StartAsync(string driver, string scope, bool encrypt, SessionApp? sharing = null) =>
        SessionApp.StartAsync(
            b => Fixture(driver).Use(b, scope),
            a =>
            {
                a.MapPost("/set/{name}", (HttpContext c, string name) => c.Session.SetString("name", name));
                a.MapGet("/get", (HttpContext c) => c.Session.GetString("name") ?? "");
            },
            o =>
            {
                o.EncryptAtRest = encrypt;
                o.Events.OnInvalidSessionAccessed = c =>
                {
                    _invalid.Enqueue(c.Reason);
                    return Task.CompletedTask;
                };
            },
            services: sharing is null ? null : s => SessionApp.ShareDataProtection(s, sharing.Services));

    /// <summary>One browser whose requests a load balancer sends to either instance: one cookie jar for both.</summary>
    private static SharedBrowser Browser(SessionApp first, SessionApp second) => new(first, second);

    private sealed class SharedBrowser(SessionApp first, SessionApp second)
    {
        private readonly Dictionary<SessionApp, (HttpClient Client, CookieJarHandler Jar)> _clients = new()
        {
            [first] = (first.CreateClient(out var firstJar), firstJar),
            [second] = (second.CreateClient(out var secondJar), secondJar),
        };

        public Task Post(SessionApp app, string path) => SendAsync(app, c => c.PostAsync(path, null));

        public async Task<string> Get(SessionApp app)
        {
            string? body = null;
            await SendAsync(app, async c =>
            {
                var response = await c.GetAsync("/get");
                body = await response.Content.ReadAsStringAsync();
                return response;
            });
            return body!;
        }

        /// <summary>Sends through <paramref name="app"/>'s client, then gives the other client the cookies as they are now.</summary>
        private async Task SendAsync(SessionApp app, Func<HttpClient, Task<HttpResponseMessage>> send)
        {
            var (client, jar) = _clients[app];
            (await send(client)).EnsureSuccessStatusCode();
            var other = _clients[app == first ? second : first].Jar.Cookies;
            foreach (System.Net.Cookie cookie in other.GetAllCookies())
            {
                cookie.Expired = true;
            }

            other.Add(jar.Cookies.GetAllCookies());
        }
    }
}
