using System.Net;
using Asm.Caching;
using Asm.Caching.Sessions;
using Asm.Caching.Drivers.InMemory;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Tests.Diagnostics;
using Asm.SessionAdapter.Tests.Import;
using Asm.Testing.Cleanup;
using Asm.Testing.Http;
using Asm.Testing.Redis;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Limits;

/// <summary>Storage limits seen from requests: refusals are clear, counted, and cost nobody their live session.</summary>
public sealed class StorageLimitTests(RedisServer redis) : IClassFixture<RedisServer>
{
    private Exception? _thrown;

    [Fact]
    public async Task NewSessionPastInMemorySizeLimit_RefusedWithSessionStorageExceptionAndCounted()
    {
        await using var app = await SessionApp.StartAsync(b => b.UseInMemoryDriver(o => o.SizeLimit = 2), Map);
        using (var refused = app.Services.CollectCounter(AsmSessionMetricNames.Refused))
        {
            var first = app.CreateClient();
            var second = app.CreateClient();
            Assert.Equal(HttpStatusCode.OK, (await first.PostAsync("/set?value=1", null)).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await second.PostAsync("/set?value=2", null)).StatusCode);

            var third = await app.CreateClient().PostAsync("/set?value=3", null);

            Assert.Equal(HttpStatusCode.InternalServerError, third.StatusCode);
            var thrown = Assert.IsType<SessionStorageException>(_thrown);
            Assert.StartsWith("Failed creating session ", thrown.Message, StringComparison.Ordinal);
            Assert.Contains("InMemoryDriverOptions.SizeLimit", thrown.Message, StringComparison.Ordinal);
            Assert.IsType<StorageFullException>(thrown.InnerException);
            Assert.Equal(1, refused.Total());

            // Nobody was evicted to make room, and the live sessions still take writes.
            Assert.Equal(HttpStatusCode.OK, (await first.PostAsync("/set?value=10", null)).StatusCode);
            Assert.Equal("10", await first.GetStringAsync("/read"));
            Assert.Equal("2", await second.GetStringAsync("/read"));
            Assert.Equal(2, app.Services.GetRequiredService<InMemoryDriver>().Count);
        }
    }

    [Fact]
    public async Task HundredThousandValuesSetInOneRequest_AreStoredWithoutAHang()
    {
        // Within MaxSessionSize (about 1.6 MB). Each Set was checked against the limit by counting every value of the
        // session again: quadratic, 20,000 Sets took 7 s and these 100,000 over a minute; counted per change, well under 1 s.
        const int Values = 100_000;
        await using var app = await SessionApp.StartAsync(b => b.UseInMemoryDriver(), a =>
        {
            a.MapPost("/many", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                for (var i = 0; i < Values; i++)
                {
                    c.Session.Set($"v{i}", BitConverter.GetBytes((long)i));
                }

                return "set";
            });
            a.MapGet("/count", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                return $"{c.Session.Keys.Count()} {BitConverter.ToInt64(c.Session.Get($"v{Values - 1}"))}";
            });
        });
        var client = app.CreateClient();

        // A hang bound, not a speed goal: 30 s is many times what the request takes on a loaded machine.
        using var hang = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var response = await client.PostAsync("/many", null, hang.Token);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"{Values} {Values - 1}", await client.GetStringAsync("/count", hang.Token));
    }

    [Fact]
    public async Task FloodOfBadOrMissingCookies_InMemory_StoresNothing()
    {
        await using var app = await SessionApp.StartAsync(b => b.UseInMemoryDriver(), Map, services: WithoutSweeps);
        var driver = app.Services.GetRequiredService<InMemoryDriver>();
        var stale = await DestroyedSessionCookieAsync(app);
        var before = driver.Count;

        await FloodAsync(app, stale);

        Assert.Equal(before, driver.Count);
    }

    [Fact]
    public async Task FloodOfBadOrMissingCookies_FileSystem_WritesNoFile()
    {
        var directory = TestDirectories.Create("asm-flood-");
        try
        {
            await using var app = await SessionApp.StartAsync(b => b.UseFileSystemDriver(directory), Map, services: WithoutSweeps);
            var stale = await DestroyedSessionCookieAsync(app);
            var before = Snapshot(directory);

            await FloodAsync(app, stale);

            // Only lock stripes: a key that hashes to a stripe no request used yet makes its lock file, once (256 at most).
            Assert.Equal(before, Snapshot(directory));
            Assert.InRange(Directory.GetFiles(Path.Combine(directory, ".locks")).Length, 1, 256);
        }
        finally
        {
            TestDirectories.Delete(directory);
        }
    }

    [Fact]
    public async Task FloodOfBadOrMissingCookies_Redis_WritesNothing()
    {
        // The server is this class's own, so its count of changes is this test's alone.
        await using var app = await SessionApp.StartAsync(b => b.UseRedisDriver(redis.EndPoint), Map, services: WithoutSweeps);
        var start = await ChangesAsync();
        var stale = await DestroyedSessionCookieAsync(app);
        var before = await ChangesAsync();

        await FloodAsync(app, stale);

        Assert.NotEqual(start, before); // the count does see the writes of a session's life
        Assert.Equal(before, await ChangesAsync());
    }

    /// <summary>
    /// No background sweep runs during a flood test (the first would come a minute after start, which a slow machine
    /// can reach): what the storage holds changes only by requests.
    /// </summary>
    private static void WithoutSweeps(IServiceCollection services) =>
        services.Configure<SweepOptions>(o => o.Interval = TimeSpan.FromDays(1));

    /// <summary>How many writes the Redis server has taken since it started (it never saves).</summary>
    private async Task<string> ChangesAsync()
    {
        var info = await redis.ExecuteTextAsync("INFO", "persistence");
        return info!.Split("\r\n").Single(line => line.StartsWith("rdb_changes_since_last_save:", StringComparison.Ordinal));
    }

    /// <summary>
    /// 750 reading requests (each taking the session's lock, the default): no cookie, random garbage of every length, a
    /// valid-looking but unknown id, a well-formed key the app's own Data Protection sealed for a session that never
    /// existed (a new one each time), and the cookie of a destroyed session. Every one is answered 200 with an empty
    /// session, and no per-key state is left in the process (the lock queue holds no session).
    /// </summary>
    private static async Task FloodAsync(SessionApp app, string staleCookie)
    {
        var random = new Random(15);
        var cookies = new List<string?>();
        for (var i = 0; i < 150; i++)
        {
            cookies.Add(null);
            cookies.Add(RandomCookie(random));
            cookies.Add(Convert.ToBase64String(Guid.NewGuid().ToByteArray()) + "CfDJ8" + new string('A', random.Next(0, 200)));
            cookies.Add(StockApp.CookieFor(app.Services, SessionKey.New().Value));
            cookies.Add(staleCookie);
        }

        var responses = await Task.WhenAll(cookies.Select(async cookie =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/read");
            if (cookie is not null)
            {
                request.Headers.TryAddWithoutValidation("Cookie", $".AspNetCore.Session={cookie}");
            }

            using var client = new HttpClient(app.Server.CreateHandler()) { BaseAddress = new Uri("http://localhost/") };
            var response = await client.SendAsync(request);
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
        }));

        Assert.All(responses, r => Assert.Equal((HttpStatusCode.OK, ""), r));
        Assert.Equal(0, app.LockQueueSessions);
    }

    private static string RandomCookie(Random random)
    {
        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_%+/=.";
        var length = random.Next(0, 4000);
        return string.Create(length, random, (span, r) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = Alphabet[r.Next(Alphabet.Length)];
            }
        });
    }

    private static async Task<string> DestroyedSessionCookieAsync(SessionApp app)
    {
        var client = app.CreateClient(out var jar);
        (await client.PostAsync("/set?value=1", null)).EnsureSuccessStatusCode();
        var cookie = jar.Cookies.GetCookies(new Uri("http://localhost/"))[".AspNetCore.Session"]!.Value;
        (await client.PostAsync("/destroy", null)).EnsureSuccessStatusCode();
        return cookie;
    }

    /// <summary>Every file of the store but the lock stripes, with when it was written.</summary>
    private static SortedDictionary<string, DateTime> Snapshot(string directory) =>
        new(Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(directory, f).StartsWith(".locks", StringComparison.Ordinal))
            .ToDictionary(f => f, File.GetLastWriteTimeUtc), StringComparer.Ordinal);

    private void Map(WebApplication app)
    {
        app.AnswerExceptionsWith500(ex => _thrown = ex);
        app.MapGet("/read", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString("v") ?? "";
        });
        app.MapPost("/set", async (HttpContext c, string value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("v", value);
            await c.Session.CommitAsync();
        });
        app.MapPost("/destroy", async (HttpContext c) => await c.Session.DestroyAsync());
    }
}
