using System.Net;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Import;
using Asm.SessionAdapter.Tests.Diagnostics;
using Asm.SessionAdapter.Tests.Identity;
using Asm.Testing.Http;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.Import;

/// <summary>
/// The swap from the stock <c>AddSession()</c> to Asm with <c>ImportStockSessions()</c>: sessions written by the stock
/// middleware in one app, read after the swap by a second app that keeps the stock app's <c>IDistributedCache</c> and
/// shares its Data Protection keys. Each subclass is one real stock stack.
/// </summary>
public abstract class StockSessionImportTests
{
    /// <summary>Registers the <c>IDistributedCache</c> the stock session used (and the app keeps after the swap).</summary>
    protected abstract void AddStockCache(IServiceCollection services);

    /// <summary>Chooses the driver of Asm's sessions after the swap.</summary>
    protected abstract void UseAsmDriver(IAsmSessionBuilder builder);

    [Fact]
    public async Task StockSession_IsImportedWithItsValues_AndItsStockEntryRemoved()
    {
        await using var stock = await StartStockAsync();
        var (stockClient, stockJar) = (stock.CreateClient(out var jar), jar);
        await stockClient.PostAsync("/set?name=user&value=alice", null);
        await stockClient.PostAsync("/inc", null);
        await stockClient.PostAsync("/inc", null);
        var stockKey = StockApp.KeyOf(stock.Services, stockJar);

        var logs = new FakeLogCollector();
        await using var asm = await StartAsmAsync(stock, logs: logs);
        using var imported = asm.Services.CollectCounter(AsmSessionMetricNames.Imported);
        var client = ClientWithCookiesOf(asm, stockJar, out var asmJar);

        Assert.Equal("alice", await client.GetStringAsync("/get?name=user"));
        var asmKey = StockApp.KeyOf(asm.Services, asmJar);
        Assert.NotEqual(stockKey, asmKey);
        Assert.False(StockSessionImporter.IsStockKey(asmKey));
        Assert.Equal("3", await (await client.PostAsync("/inc", null)).Content.ReadAsStringAsync());
        Assert.Equal("n,user", await client.GetStringAsync("/keys"));
        Assert.Null(await stock.Services.GetRequiredService<IDistributedCache>().GetAsync(stockKey));
        Assert.Equal(1, imported.Total());
        var messages = logs.GetSnapshot().Select(r => r.Message + r.Exception).ToList();
        var importedMessage = Assert.Single(messages, m => m.Contains("was imported as session", StringComparison.Ordinal));
        Assert.Contains(SessionKey.Hash(stockKey), importedMessage, StringComparison.Ordinal);
        Assert.All(messages, m => Assert.DoesNotContain(stockKey, m, StringComparison.Ordinal));
        Assert.All(messages, m => Assert.DoesNotContain(asmKey, m, StringComparison.Ordinal));
    }

    [Fact]
    public async Task StockSession_IsImportedByAReadOnlyRequest_WhichSendsTheAsmCookie()
    {
        await using var stock = await StartStockAsync();
        var stockClient = stock.CreateClient(out var stockJar);
        await stockClient.PostAsync("/set?name=user&value=alice", null);
        await using var asm = await StartAsmAsync(stock);
        var client = ClientWithCookiesOf(asm, stockJar, out var asmJar);

        Assert.Equal("alice", await client.GetStringAsync("/get-readonly?name=user"));

        Assert.False(StockSessionImporter.IsStockKey(StockApp.KeyOf(asm.Services, asmJar)));
        Assert.Equal("alice", await client.GetStringAsync("/get-readonly?name=user"));
    }

    [Fact]
    public async Task ParallelRequestsWithOneStockCookie_ImportItOnce_AndAllGetTheSameAsmSession()
    {
        await using var stock = await StartStockAsync();
        var stockClient = stock.CreateClient(out var stockJar);
        await stockClient.PostAsync("/inc", null);

        await using var asm = await StartAsmAsync(stock);
        using var imported = asm.Services.CollectCounter(AsmSessionMetricNames.Imported);
        var tabs = Enumerable.Range(0, 20).Select(_ => (Client: ClientWithCookiesOf(asm, stockJar, out var jar), Jar: jar)).ToList();
        var responses = await Task.WhenAll(tabs.Select(t => t.Client.PostAsync("/inc", null)));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        var counts = await Task.WhenAll(responses.Select(r => r.Content.ReadAsStringAsync()));
        Assert.Equal(Enumerable.Range(2, 20).Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture)), counts.Order(StringComparer.Ordinal).OrderBy(c => c.Length));
        Assert.Single(tabs.Select(t => StockApp.KeyOf(asm.Services, t.Jar)).Distinct());
        Assert.Equal(1, imported.Total());
    }

    [Fact]
    public async Task StockKeyWithoutPayload_IsUnknown_AndGetsAFreshSession()
    {
        await using var stock = await StartStockAsync();
        var events = new RecordingSessionEvents();
        await using var asm = await StartAsmAsync(stock, events);
        var client = asm.CreateClient(out var jar);
        jar.Cookies.Add(new Cookie(AsmSessionOptions.DefaultCookieName, StockApp.CookieFor(stock.Services, Guid.NewGuid().ToString()), "/", "localhost"));

        var response = await client.GetAsync("/get?name=user");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("-", await response.Content.ReadAsStringAsync());
        Assert.Equal([("/get", InvalidSessionReason.Unknown)], events.Invalid);
    }

    public static TheoryData<string> Damages => ["wrong revision", "truncated", "length past the end", "trailing bytes", "10 MB of garbage"];

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task DamagedStockPayload_IsCorrupt_GetsAFreshSession_AndNothingIsWrittenUnderTheStockKey(string damage)
    {
        var payload = StockPayload(("user", "alice"u8.ToArray()));
        payload = damage switch
        {
            "wrong revision" => [3, .. payload[1..]],
            "truncated" => payload[..^2],
            "length past the end" => [.. payload[..^9], 0, 0, 0x10, 0, .. payload[^5..]],
            "trailing bytes" => [.. payload, 0],
            _ => Garbage(10 * 1024 * 1024),
        };
        await using var stock = await StartStockAsync();
        var cache = stock.Services.GetRequiredService<IDistributedCache>();
        var stockKey = Guid.NewGuid().ToString();
        await cache.SetAsync(stockKey, payload, new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(20) });
        var events = new RecordingSessionEvents();
        await using var asm = await StartAsmAsync(stock, events);
        using var imported = asm.Services.CollectCounter(AsmSessionMetricNames.Imported);
        var client = asm.CreateClient(out var jar);
        jar.Cookies.Add(new Cookie(AsmSessionOptions.DefaultCookieName, StockApp.CookieFor(stock.Services, stockKey), "/", "localhost"));

        var write = await client.PostAsync("/set?name=other&value=mallory", null);
        var read = await client.GetAsync("/keys");

        Assert.Equal(HttpStatusCode.OK, write.StatusCode);
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal("other", await read.Content.ReadAsStringAsync());
        Assert.Equal([("/set", InvalidSessionReason.Corrupt)], events.Invalid);
        Assert.Equal(payload, await cache.GetAsync(stockKey));
        Assert.Equal(0, imported.Total());
    }

    [Fact]
    public async Task WithoutImportStockSessions_StockKeysAreUnknown_AndTheStockEntryStays()
    {
        await using var stock = await StartStockAsync();
        var stockClient = stock.CreateClient(out var stockJar);
        await stockClient.PostAsync("/set?name=user&value=alice", null);
        var events = new RecordingSessionEvents();
        await using var asm = await StartAsmAsync(stock, events, import: false);

        Assert.Equal("-", await ClientWithCookiesOf(asm, stockJar, out _).GetStringAsync("/get?name=user"));
        Assert.Equal([("/get", InvalidSessionReason.Unknown)], events.Invalid);
        Assert.NotNull(await stock.Services.GetRequiredService<IDistributedCache>().GetAsync(StockApp.KeyOf(stock.Services, stockJar)));
    }

    [Fact]
    public async Task StockKey_OpensTheImportedSessionInsideTheZombieWindow_AndNothingOnceItCloses()
    {
        await using var stock = await StartStockAsync();
        var stockClient = stock.CreateClient(out var stockJar);
        await stockClient.PostAsync("/set?name=user&value=alice", null);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var events = new RecordingSessionEvents();
        await using var asm = await StartAsmAsync(stock, events, time);
        Assert.Equal("alice", await ClientWithCookiesOf(asm, stockJar, out _).GetStringAsync("/get?name=user"));

        Assert.Equal("alice", await ClientWithCookiesOf(asm, stockJar, out _).GetStringAsync("/get?name=user"));
        time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal("-", await ClientWithCookiesOf(asm, stockJar, out _).GetStringAsync("/get?name=user"));

        Assert.Equal([("/get", InvalidSessionReason.ZombieExpired)], events.Invalid);
    }

    [Fact]
    public async Task StockKey_AfterTheImportedSessionLogsIn_IsServedAsAZombieButNeverHandedTheNewKey()
    {
        await using var stock = await StartStockAsync();
        var stockClient = stock.CreateClient(out var stockJar);
        await stockClient.PostAsync("/set?name=cart&value=book", null);
        var events = new RecordingSessionEvents();
        await using var asm = await StartAsmAsync(stock, events);
        var user = ClientWithCookiesOf(asm, stockJar, out var userJar);
        Assert.Equal("book", await user.GetStringAsync("/get?name=cart"));
        Assert.Equal(HttpStatusCode.OK, (await user.PostAsync("/login", null)).StatusCode);
        var loggedInKey = StockApp.KeyOf(asm.Services, userJar);

        // Whoever still holds the stock cookie (a planted one, or a stale tab), inside the window of the import.
        var stale = await ClientWithCookiesOf(asm, stockJar, out var staleJar).GetAsync("/get?name=user");

        Assert.Equal("alice", await stale.Content.ReadAsStringAsync());
        Assert.False(stale.Headers.Contains(Microsoft.Net.Http.Headers.HeaderNames.SetCookie));
        Assert.NotEqual(loggedInKey, StockApp.KeyOf(asm.Services, staleJar));
        Assert.Equal("alice", await user.GetStringAsync("/get?name=user"));
    }

    [Fact]
    public async Task ImportingRequestsProfile_IsTheSessionsFirst()
    {
        await using var stock = await StartStockAsync();
        var stockClient = stock.CreateClient(out var stockJar);
        await stockClient.PostAsync("/set?name=user&value=alice", null);
        var events = new RecordingSessionEvents();
        await using var asm = await StartAsmAsync(stock, events);
        var client = ClientWithCookiesOf(asm, stockJar, out _);
        client.DefaultRequestHeaders.UserAgent.ParseAdd("first-agent/1.0");
        await client.GetStringAsync("/get?name=user");
        await client.GetStringAsync("/get?name=user");
        Assert.Empty(events.ProfileChanges);

        client.DefaultRequestHeaders.UserAgent.Clear();
        client.DefaultRequestHeaders.UserAgent.ParseAdd("second-agent/1.0");
        await client.GetStringAsync("/get?name=user");

        var change = Assert.Single(events.ProfileChanges);
        Assert.Contains("first-agent/1.0", Assert.Single(change.PreviousProfiles), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RollingDeploy_AnImportedUserOnAnOldServerSeesAnEmptySession_AndKeepsTheAsmSessionOnNewServers()
    {
        await using var stock = await StartStockAsync();
        var stockClient = stock.CreateClient(out var stockJar);
        await stockClient.PostAsync("/set?name=user&value=alice", null);
        await using var asm = await StartAsmAsync(stock);
        var client = ClientWithCookiesOf(asm, stockJar, out var asmJar);
        Assert.Equal("alice", await client.GetStringAsync("/get?name=user"));

        // The load balancer sends the user back to a server that still runs the stock session, which writes there.
        var old = stock.CreateClient(out var oldJar);
        oldJar.Cookies.Add(asmJar.Cookies.GetAllCookies());
        Assert.Equal("-", await old.GetStringAsync("/get?name=user"));
        Assert.Equal(HttpStatusCode.OK, (await old.PostAsync("/set?name=cart&value=book", null)).StatusCode);

        // Back on an Asm server: the imported session is intact; what the old server wrote is not in it.
        Assert.Equal("alice", await client.GetStringAsync("/get?name=user"));
        Assert.Equal("-", await client.GetStringAsync("/get?name=cart"));

        // A user not imported yet keeps the stock session on old servers, and is imported on the first new one.
        var notYet = stock.CreateClient(out var notYetJar);
        await notYet.PostAsync("/set?name=user&value=bob", null);
        Assert.Equal("bob", await notYet.GetStringAsync("/get?name=user"));
        Assert.Equal("bob", await ClientWithCookiesOf(asm, notYetJar, out _).GetStringAsync("/get?name=user"));
    }

    /// <summary>The stock serialization (revision 2) of a session holding <paramref name="entries"/>.</summary>
    internal static byte[] StockPayload(params (string Name, byte[] Value)[] entries)
    {
        using var stream = new MemoryStream();
        stream.Write([2, 0, 0, (byte)entries.Length]);
        stream.Write(Guid.NewGuid().ToByteArray());
        foreach (var (name, value) in entries)
        {
            var nameBytes = System.Text.Encoding.UTF8.GetBytes(name);
            stream.Write([(byte)(nameBytes.Length >> 8), (byte)nameBytes.Length]);
            stream.Write(nameBytes);
            stream.Write([(byte)(value.Length >> 24), (byte)(value.Length >> 16), (byte)(value.Length >> 8), (byte)value.Length]);
            stream.Write(value);
        }

        return stream.ToArray();
    }

    private static byte[] Garbage(int length)
    {
        var bytes = new byte[length];
        new Random(14).NextBytes(bytes);
        return bytes;
    }

    private protected static HttpClient ClientWithCookiesOf(SessionApp app, CookieJarHandler from, out CookieJarHandler jar)
    {
        var client = app.CreateClient(out jar);
        jar.Cookies.Add(from.Cookies.GetAllCookies());
        return client;
    }

    /// <summary>The app before the swap: the stock session.</summary>
    private protected Task<StockApp> StartStockAsync() => StockApp.StartAsync(AddStockCache);

    /// <summary>The app after the swap: Asm sessions, the stock cache kept, the same Data Protection keys.</summary>
    private protected Task<SessionApp> StartAsmAsync(StockApp stock, RecordingSessionEvents? events = null, TimeProvider? time = null, bool import = true, bool encrypt = false, FakeLogCollector? logs = null) =>
        SessionApp.StartAsync(
            builder =>
            {
                UseAsmDriver(builder);
                if (import)
                {
                    builder.ImportStockSessions();
                }
            },
            StockApp.MapRoutes,
            options =>
            {
                options.Events = events ?? new AsmSessionEvents();
                options.EncryptAtRest = encrypt;
            },
            time,
            services =>
            {
                AddStockCache(services);
                SessionApp.ShareDataProtection(services, stock.Services);
                if (logs is not null)
                {
                    services.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs));
                }
            });
}
