using System.Globalization;
using System.Net;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Tests.Diagnostics;
using Asm.SessionAdapter.Tests.Identity;
using Asm.SessionAdapter.Tests.Import;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.Migration;

/// <summary>
/// <c>MigrateFrom</c> end to end: sessions written by an app on the previous driver, then used through a second app
/// on the new driver with <c>MigrateFrom</c> on the previous one (sharing its Data Protection keys, as servers behind
/// one load balancer do). The first app keeps running: it is the old server of a rolling deploy, and its driver is the
/// previous storage as that server sees it.
/// </summary>
public abstract class DriverMigrationTests<TPrevious, TCurrent>(TPrevious previous, TCurrent current)
    where TPrevious : class, IDriverFixture, new()
    where TCurrent : class, IDriverFixture, new()
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly string _previousScope = "old" + Guid.NewGuid().ToString("N");
    private readonly string _currentScope = "new" + Guid.NewGuid().ToString("N");

    [Fact]
    public async Task HundredSessions_MoveWhileParallelRequestsWrite_NothingLostNothingDuplicated()
    {
        await using var before = await StartBeforeAsync();
        var users = await SeedAsync(before, 100);

        // 500 requests queue five to a lock at once: on a loaded machine the last in line may wait longer than the default 10 s.
        await using var after = await StartAfterAsync(before, configure: o => o.LockWaitTimeout = Patience);
        using var migrated = after.Services.CollectCounter(AsmSessionMetricNames.Migrated);
        using var created = after.Services.CollectCounter(AsmSessionMetricNames.Created);

        // Five parallel requests per session, all sessions at once: every one of them races to move its session.
        var responses = await Task.WhenAll(users.SelectMany(u => Enumerable.Range(0, 5).Select(_ => ClientWithCookiesOf(after, u.Jar).PostAsync("/inc", null))))
            .WaitAsync(Patience);

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        foreach (var (index, jar) in users)
        {
            var client = ClientWithCookiesOf(after, jar);
            Assert.Equal("6", await client.GetStringAsync("/get-n"));
            Assert.Equal($"u{index}", await client.GetStringAsync("/get?name=user"));
        }

        Assert.Equal(100, migrated.Total());
        Assert.Equal(0, created.Total());

        // The previous copies are ended: the old server no longer opens them.
        var (_, first) = users[0];
        Assert.Equal("-", await ClientWithCookiesOf(before, first).GetStringAsync("/get?name=user"));
    }

    [Fact]
    public async Task SessionLockedInThePreviousDriver_IsWaitedFor_AndMovedWithTheHoldersWrite()
    {
        await using var before = await StartBeforeAsync();
        var user = before.CreateClient(out var jar);
        await user.PostAsync("/inc", null);
        var key = KeyOf(before, jar);
        var oldStorage = before.Services.GetRequiredService<ISessionDriver>();
        var held = await HoldAsync(oldStorage, key);
        await using var after = await StartAfterAsync(before);

        var increment = ClientWithCookiesOf(after, jar).PostAsync("/inc", null);
        await Task.WhenAny(increment, Task.Delay(TimeSpan.FromMilliseconds(500)));
        Assert.False(increment.IsCompleted, "The request did not wait for the lock held in the previous driver.");
        var commitWhileWaiting = await oldStorage.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                Now = DateTimeOffset.UtcNow,
                IdleTimeout = TimeSpan.FromMinutes(20),
                Lease = held.Lease,
                ReleaseLock = true,
                Changes = new Dictionary<string, byte[]?> { ["n"] = [0, 0, 0, 10] },
            },
            CancellationToken.None);

        Assert.Equal(SessionCommitStatus.Committed, commitWhileWaiting);
        Assert.Equal("11", await (await increment.WaitAsync(Patience)).Content.ReadAsStringAsync());
        Assert.Equal("11", await ClientWithCookiesOf(after, jar).GetStringAsync("/get-n"));
    }

    [Fact]
    public async Task LateCommitToThePreviousCopy_FailsOnceTheSessionMoved()
    {
        await using var before = await StartBeforeAsync();
        var user = before.CreateClient(out var jar);
        await user.PostAsync("/inc", null);
        var key = KeyOf(before, jar);
        var oldStorage = before.Services.GetRequiredService<ISessionDriver>();
        await using var after = await StartAfterAsync(before);

        Assert.Equal("2", await (await ClientWithCookiesOf(after, jar).PostAsync("/inc", null)).Content.ReadAsStringAsync());
        var late = await oldStorage.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                Now = DateTimeOffset.UtcNow,
                IdleTimeout = TimeSpan.FromMinutes(20),
                Changes = new Dictionary<string, byte[]?> { ["n"] = [0, 0, 0, 99] },
            },
            CancellationToken.None);

        Assert.Equal(SessionCommitStatus.NotFound, late);
        Assert.Equal("2", await ClientWithCookiesOf(after, jar).GetStringAsync("/get-n"));
    }

    [Fact]
    public async Task ZombieKeyInsideItsWindow_IsMovedWithTheSession_AndStillServes()
    {
        await using var before = await StartBeforeAsync();
        var (jar, oldTab) = await RegeneratedAsync(before);
        var events = new RecordingSessionEvents();
        await using var after = await StartAfterAsync(before, events);

        Assert.Equal("alice", await ClientWithCookiesOf(after, oldTab).GetStringAsync("/get?name=user"));
        Assert.Equal("alice", await ClientWithCookiesOf(after, jar).GetStringAsync("/get?name=user"));
        Assert.Equal(["/get"], events.Zombies);
        Assert.Empty(events.Invalid);
    }

    [Fact]
    public async Task ZombieKey_IsMovedWithTheRegeneratingBrowsersProfile_AndRefusedToAnotherBrowser()
    {
        await using var before = await StartBeforeAsync();
        var (_, planted) = await RegeneratedAsync(before);
        var events = new RecordingSessionEvents();
        await using var after = await StartAfterAsync(before, events);

        var other = ClientWithCookiesOf(after, planted);
        other.DefaultRequestHeaders.UserAgent.ParseAdd("AsmTest-Other/2.0");
        Assert.Equal("-", await other.GetStringAsync("/get?name=user"));
        Assert.Equal("alice", await ClientWithCookiesOf(after, planted).GetStringAsync("/get?name=user"));
        Assert.Equal([("/get", InvalidSessionReason.ZombieProfileMismatch)], events.Invalid);
        Assert.Equal(["/get"], events.Zombies);
    }

    [Fact]
    public async Task DestroyedSession_StaysDestroyed_AndIsNotMoved()
    {
        await using var before = await StartBeforeAsync();
        var user = before.CreateClient(out var jar);
        await user.PostAsync("/set?name=user&value=alice", null);
        var stolen = new CookieContainer();
        stolen.Add(jar.Cookies.GetAllCookies());
        var key = KeyOf(before, jar);
        await user.PostAsync("/destroy", null);
        var events = new RecordingSessionEvents();
        await using var after = await StartAfterAsync(before, events);
        using var migrated = after.Services.CollectCounter(AsmSessionMetricNames.Migrated);

        Assert.Equal("-", await ClientWithCookiesOf(after, stolen).GetStringAsync("/get?name=user"));
        Assert.Equal("-", await ClientWithCookiesOf(after, stolen).GetStringAsync("/get?name=user"));

        Assert.Equal([("/get", InvalidSessionReason.Destroyed), ("/get", InvalidSessionReason.Destroyed)], events.Invalid);
        Assert.Equal(0, migrated.Total());
        Assert.Equal(SessionLoadStatus.Unknown, (await LoadAsync(after.Services.GetRequiredService<ISessionDriver>(), key)).Status);
    }

    [Fact]
    public async Task NewSessions_AreCreatedInTheNewDriverOnly()
    {
        await using var before = await StartBeforeAsync();
        await using var after = await StartAfterAsync(before);
        var user = after.CreateClient(out var jar);

        await user.PostAsync("/set?name=user&value=bob", null);

        var key = KeyOf(after, jar);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(after.Services.GetRequiredService<ISessionDriver>(), key)).Status);
        Assert.Equal(SessionLoadStatus.Unknown, (await LoadAsync(before.Services.GetRequiredService<ISessionDriver>(), key)).Status);
    }

    [Fact]
    public async Task BoundSession_KeepsItsUserOnTheMove_AndIsListedAndEndedAsThatUsersDevice()
    {
        await using var before = await StartBeforeAsync();
        var user = before.CreateClient(out var jar);
        await user.PostAsync("/bind?user=ada", null);
        var sessionId = KeyOf(before, jar).Id;
        var events = new RecordingSessionEvents();
        await using var after = await StartAfterAsync(before, events);
        var manager = after.Services.GetRequiredService<IAsmSessionManager>();

        Assert.Equal("ada", await ClientWithCookiesOf(after, jar).GetStringAsync("/user"));
        Assert.Equal([sessionId], (await manager.GetUserSessionsAsync("ada")).Select(s => s.SessionId));
        Assert.Equal(1, await manager.DestroyUserSessionsAsync("ada"));

        Assert.Equal("-", await ClientWithCookiesOf(after, jar).GetStringAsync("/user"));
        Assert.Equal([(sessionId, (string?)"ada", SessionEndReason.Destroyed)], events.Ended);
        Assert.Equal([("/user", InvalidSessionReason.Destroyed)], events.Invalid);
    }

    [Fact]
    public async Task SessionNotMovedYet_IsFoundAndEndedByTheNewServersManager_ByUserAndById()
    {
        await using var before = await StartBeforeAsync();
        var ada = before.CreateClient(out var adaJar);
        await ada.PostAsync("/bind?user=ada", null);
        var bob = before.CreateClient(out var bobJar);
        await bob.PostAsync("/set?name=user&value=bob", null);
        var (adaId, bobId) = (KeyOf(before, adaJar).Id, KeyOf(before, bobJar).Id);
        var events = new RecordingSessionEvents();
        await using var after = await StartAfterAsync(before, events);
        var manager = after.Services.GetRequiredService<IAsmSessionManager>();

        Assert.Equal([adaId], (await manager.GetUserSessionsAsync("ada")).Select(s => s.SessionId));
        Assert.Equal(bobId, (await manager.GetSessionAsync(bobId))?.SessionId);
        Assert.Equal(1, await manager.DestroyUserSessionsAsync("ada"));
        Assert.True(await manager.DestroySessionAsync(bobId));

        Assert.Equal("-", await ClientWithCookiesOf(after, adaJar).GetStringAsync("/user"));
        Assert.Equal("-", await ClientWithCookiesOf(after, bobJar).GetStringAsync("/get?name=user"));
        Assert.Equal("-", await ClientWithCookiesOf(before, bobJar).GetStringAsync("/get?name=user"));
        Assert.Equal([("/user", InvalidSessionReason.Destroyed), ("/get", InvalidSessionReason.Destroyed)], events.Invalid);
        Assert.Equal(
            [(adaId, (string?)"ada", SessionEndReason.Destroyed), (bobId, null, SessionEndReason.Destroyed)],
            events.Ended.OrderBy(e => e.UserId is null));
    }

    [Fact]
    public async Task SessionLockedInThePreviousDriver_IsListedAndEndedWhereItIs_AndItsHoldersCommitIsRefused()
    {
        await using var before = await StartBeforeAsync();
        var ada = before.CreateClient(out var jar);
        await ada.PostAsync("/bind?user=ada", null);
        var key = KeyOf(before, jar);
        var oldStorage = before.Services.GetRequiredService<ISessionDriver>();
        var held = await HoldAsync(oldStorage, key);
        var events = new RecordingSessionEvents();
        await using var after = await StartAfterAsync(before, events);
        var manager = after.Services.GetRequiredService<IAsmSessionManager>();

        Assert.Equal([key.Id], (await manager.GetUserSessionsAsync("ada")).Select(s => s.SessionId));
        Assert.Equal(1, await manager.DestroyUserSessionsAsync("ada"));

        Assert.Equal(SessionCommitStatus.NotFound, await HoldersCommitAsync(oldStorage, key, held, DateTimeOffset.UtcNow));
        Assert.Equal([(key.Id, (string?)"ada", SessionEndReason.Destroyed)], events.Ended);
        Assert.Equal("-", await ClientWithCookiesOf(after, jar).GetStringAsync("/user"));
        Assert.Equal([("/user", InvalidSessionReason.Destroyed)], events.Invalid);
    }

    /// <summary>
    /// The new server's clock runs two minutes ahead of the old server's. A bound session whose lock a long request on
    /// the old server has held (renewing its lease) since its last write is idle 19 minutes by the old clock, 21 by the
    /// new one: past its 20-minute idle timeout there. The new server's log-out of every device, or lookup by id, finds
    /// it ended: it must then be ended in the previous storage too, or the holder's commit keeps it alive on the old
    /// server, listed in no user's index, where no log-out of every device finds it.
    /// </summary>
    [Theory]
    [InlineData("log-out of every device")]
    [InlineData("lookup by id")]
    public async Task LockedSessionPastItsEndByTheNewServersClock_IsEndedInThePreviousDriverToo(string by)
    {
        var oldClock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var newClock = new FakeTimeProvider(oldClock.GetUtcNow() + TimeSpan.FromMinutes(2));
        await using var before = await StartBeforeAsync(time: oldClock);
        var ada = before.CreateClient(out var jar);
        await ada.PostAsync("/bind?user=ada", null);
        var key = KeyOf(before, jar);
        var oldStorage = before.Services.GetRequiredService<ISessionDriver>();
        var held = await HoldAsync(oldStorage, key, oldClock.GetUtcNow(), TimeSpan.FromMinutes(30));
        oldClock.Advance(TimeSpan.FromMinutes(19));
        newClock.Advance(TimeSpan.FromMinutes(19));
        await using var after = await StartAfterAsync(before, time: newClock);
        var manager = after.Services.GetRequiredService<IAsmSessionManager>();

        if (by == "log-out of every device")
        {
            Assert.Equal(0, await manager.DestroyUserSessionsAsync("ada"));
        }
        else
        {
            Assert.Null(await manager.GetSessionAsync(key.Id));
        }

        Assert.Equal(SessionCommitStatus.NotFound, await HoldersCommitAsync(oldStorage, key, held, oldClock.GetUtcNow()));
        Assert.Equal("-", await ClientWithCookiesOf(before, jar).GetStringAsync("/user"));
    }

    /// <summary>
    /// <c>MigrateFrom</c> naming the new driver's own storage (a configuration copied over, or a rollback to the previous
    /// storage that kept <c>MigrateFrom</c>): every session the previous driver lists is the new driver's own, and
    /// neither looking at a user's devices nor the background mover may end one.
    /// </summary>
    [Fact]
    public async Task PreviousDriverOnTheNewDriversOwnStorage_ListingAUsersDevicesAndTheBackgroundMover_EndNoSession()
    {
        var logs = new FakeLogCollector();
        await using var app = await StartOnItsOwnStorageAsync(background: false, logs);
        var ada = app.CreateClient(out var jar);
        await ada.PostAsync("/set?name=user&value=alice", null);
        await ada.PostAsync("/bind?user=ada", null);
        var manager = app.Services.GetRequiredService<IAsmSessionManager>();

        Assert.Equal([KeyOf(app, jar).Id], (await manager.GetUserSessionsAsync("ada")).Select(s => s.SessionId));
        Assert.Equal([KeyOf(app, jar).Id], (await manager.GetUserSessionsAsync("ada")).Select(s => s.SessionId));
        Assert.Equal("alice", await ada.GetStringAsync("/get?name=user"));
        Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 48);

        var moverLogs = new FakeLogCollector();
        await using (await StartOnItsOwnStorageAsync(background: true, moverLogs))
        {
            await WhenLoggedAsync(moverLogs, current.Name == "filesystem" ? "cannot list" : "Background session move complete");
        }

        Assert.Equal("alice", await ada.GetStringAsync("/get?name=user"));
        Assert.Equal([KeyOf(app, jar).Id], (await manager.GetUserSessionsAsync("ada")).Select(s => s.SessionId));
    }

    [Fact]
    public async Task EncryptedSession_MovesAsStored_AndOpensWithItsValuesProfilesZombieAndUser()
    {
        await using var before = await StartBeforeAsync(o => o.EncryptAtRest = true);
        var user = before.CreateClient(out var jar);
        await user.PostAsync("/set?name=user&value=alice", null);
        var oldKey = new CookieContainer();
        oldKey.Add(jar.Cookies.GetAllCookies());
        await user.PostAsync("/bind?user=ada", null);
        var sessionId = KeyOf(before, jar).Id;
        var profiles = (await before.Services.GetRequiredService<IAsmSessionManager>().GetSessionAsync(sessionId))!.Profiles;
        var events = new RecordingSessionEvents();
        await using var after = await StartAfterAsync(before, events, configure: o => o.EncryptAtRest = true);
        var manager = after.Services.GetRequiredService<IAsmSessionManager>();

        var info = await manager.GetSessionAsync(sessionId);
        Assert.Equal("ada", info?.UserId);
        Assert.Equal(profiles, info!.Profiles);
        Assert.NotEmpty(profiles);
        Assert.Equal("alice", await ClientWithCookiesOf(after, jar).GetStringAsync("/get?name=user"));
        Assert.Equal("ada", await ClientWithCookiesOf(after, jar).GetStringAsync("/user"));
        Assert.Equal("alice", await ClientWithCookiesOf(after, oldKey).GetStringAsync("/get?name=user"));
        var other = ClientWithCookiesOf(after, oldKey);
        other.DefaultRequestHeaders.UserAgent.ParseAdd("AsmTest-Other/2.0");
        Assert.Equal("-", await other.GetStringAsync("/get?name=user"));
        Assert.Equal([("/get", InvalidSessionReason.ZombieProfileMismatch)], events.Invalid);
        Assert.Empty(events.ProfileChanges);
    }

    /// <summary>Two servers with the background mover, one previous storage: every session moves once.</summary>
    private protected async Task BackgroundMoversOnTwoServers_MoveEverySessionOnce()
    {
        await using var before = await StartBeforeAsync();
        var users = await SeedAsync(before, 100);
        var (logsA, logsB) = (new FakeLogCollector(), new FakeLogCollector());

        await using var a = await StartAfterAsync(before, background: true, logs: logsA);
        await using var b = await StartAfterAsync(before, background: true, logs: logsB);
        await WhenLoggedAsync(logsA, "Background session move complete");
        await WhenLoggedAsync(logsB, "Background session move complete");

        var moves = logsA.GetSnapshot().Concat(logsB.GetSnapshot()).Select(r => r.Message).Where(m => m.Contains("was moved from the previous driver", StringComparison.Ordinal)).ToList();
        Assert.Equal(100, moves.Count);
        Assert.Equal(100, moves.Distinct(StringComparer.Ordinal).Count());
        var storage = a.Services.GetRequiredService<ISessionDriver>();
        foreach (var (index, jar) in users)
        {
            Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(storage, KeyOf(before, jar))).Status);
            Assert.Equal($"u{index}", await ClientWithCookiesOf(b, jar).GetStringAsync("/get?name=user"));
        }
    }

    /// <summary>Waits until <paramref name="logs"/> holds a message containing <paramref name="text"/>.</summary>
    private protected static async Task WhenLoggedAsync(FakeLogCollector logs, string text)
    {
        using var deadline = new CancellationTokenSource(Patience);
        while (!logs.GetSnapshot().Any(r => r.Message.Contains(text, StringComparison.Ordinal)))
        {
            await Task.Delay(20, deadline.Token);
        }
    }

    /// <summary>Sessions written through the old server, each holding "user" = u&lt;index&gt; and "n" = 1.</summary>
    private protected static async Task<List<(int Index, CookieJarHandler Jar)>> SeedAsync(SessionApp before, int count)
    {
        var users = new List<(int Index, CookieJarHandler Jar)>();
        await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
        {
            var client = before.CreateClient(out var jar);
            (await client.PostAsync($"/set?name=user&value=u{i}", null)).EnsureSuccessStatusCode();
            Assert.Equal("1", await (await client.PostAsync("/inc", null)).Content.ReadAsStringAsync());
            lock (users)
            {
                users.Add((i, jar));
            }
        }));
        return users;
    }

    /// <summary>A session holding "user" = alice whose key was regenerated on the old server: the browser's jar, and the replaced key's cookies.</summary>
    private static async Task<(CookieJarHandler Jar, CookieContainer OldKey)> RegeneratedAsync(SessionApp before)
    {
        var user = before.CreateClient(out var jar);
        await user.PostAsync("/set?name=user&value=alice", null);
        var oldKey = new CookieContainer();
        oldKey.Add(jar.Cookies.GetAllCookies());
        await user.PostAsync("/regen", null);
        return (jar, oldKey);
    }

    private static Task<SessionLoadResult> LoadAsync(ISessionDriver driver, SessionKey key) =>
        driver.LoadAsync(new SessionLoadRequest { Key = key, Now = DateTimeOffset.UtcNow, IdleTimeout = TimeSpan.FromMinutes(20) }, CancellationToken.None).AsTask();

    /// <summary>Takes the session's lock in <paramref name="storage"/>, as a request still running on an old server holds it.</summary>
    private static async Task<SessionLoadResult> HoldAsync(ISessionDriver storage, SessionKey key, DateTimeOffset? now = null, TimeSpan? lease = null)
    {
        var held = await storage.LoadAsync(
            new SessionLoadRequest
            {
                Key = key,
                Now = now ?? DateTimeOffset.UtcNow,
                IdleTimeout = TimeSpan.FromMinutes(20),
                Lease = SessionLease.Create(lease ?? TimeSpan.FromMinutes(1)),
            },
            CancellationToken.None);
        Assert.Equal(SessionLoadStatus.Found, held.Status);
        return held;
    }

    /// <summary>The commit of the request on an old server that holds the session's lock (<paramref name="held"/>), made at <paramref name="now"/>.</summary>
    private static Task<SessionCommitStatus> HoldersCommitAsync(ISessionDriver storage, SessionKey key, SessionLoadResult held, DateTimeOffset now) =>
        storage.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                Now = now,
                IdleTimeout = TimeSpan.FromMinutes(20),
                Lease = held.Lease,
                ReleaseLock = true,
                Changes = new Dictionary<string, byte[]?> { ["user"] = "mallory"u8.ToArray() },
            },
            CancellationToken.None).AsTask();

    private static SessionKey KeyOf(SessionApp app, CookieJarHandler jar) =>
        SessionKey.TryParse(StockApp.KeyOf(app.Services, jar), out var key) ? key : throw new InvalidOperationException("Not an Asm key.");

    private protected static HttpClient ClientWithCookiesOf(SessionApp app, CookieJarHandler from) => ClientWithCookiesOf(app, from.Cookies);

    private static HttpClient ClientWithCookiesOf(SessionApp app, CookieContainer from)
    {
        var client = app.CreateClient(out var jar);
        jar.Cookies.Add(from.GetAllCookies());
        return client;
    }

    /// <summary>The app on the previous driver: the old server.</summary>
    private protected Task<SessionApp> StartBeforeAsync(Action<AsmSessionOptions>? configure = null, TimeProvider? time = null) =>
        SessionApp.StartAsync(b => previous.Use(b, _previousScope), Map, configure, time);

    /// <summary>The app on the new driver, migrating from the previous one, with the old server's Data Protection keys.</summary>
    private protected Task<SessionApp> StartAfterAsync(
        SessionApp before,
        RecordingSessionEvents? events = null,
        bool background = false,
        FakeLogCollector? logs = null,
        Action<AsmSessionOptions>? configure = null,
        TimeProvider? time = null) =>
        SessionApp.StartAsync(
            builder =>
            {
                current.Use(builder, _currentScope);
                builder.MigrateFrom(
                    old =>
                    {
                        previous.Use(old, _previousScope);
                        if (!previous.IsShared)
                        {
                            // The in-memory store lives in the old app's process: the new app reads that very store.
                            old.Services.AddSingleton(before.Services.GetRequiredService<InMemoryDriver>());
                        }
                    },
                    migration =>
                    {
                        migration.MoveInBackground = background;
                        migration.SessionsPerSecond = 1_000_000;
                    });
            },
            Map,
            options =>
            {
                options.Events = events ?? new AsmSessionEvents();
                configure?.Invoke(options);
            },
            time,
            services =>
            {
                SessionApp.ShareDataProtection(services, before.Services);
                if (logs is not null)
                {
                    services.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs));
                }
            });

    /// <summary>An app on the new driver whose <c>MigrateFrom</c> names that very storage.</summary>
    private Task<SessionApp> StartOnItsOwnStorageAsync(bool background, FakeLogCollector logs) =>
        SessionApp.StartAsync(
            builder =>
            {
                current.Use(builder, _currentScope);
                builder.MigrateFrom(old => current.Use(old, _currentScope), migration => migration.MoveInBackground = background);
            },
            Map,
            services: services => services.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs)));

    private static void Map(WebApplication app)
    {
        StockApp.MapRoutes(app);
        app.MapGet("/get-n", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return (c.Session.GetInt32("n") ?? 0).ToString(CultureInfo.InvariantCulture);
        });
        app.MapPost("/regen", (HttpContext c) => c.Session.RegenerateIdAsync());
        app.MapPost("/destroy", (HttpContext c) => c.Session.DestroyAsync());
        app.MapPost("/bind", (HttpContext c, string user) => c.Session.BindUserAsync(user));
        app.MapGet("/user", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.UserId ?? "-";
        });
    }
}

public sealed class InMemoryToFileSystemMigrationTests(InMemoryDriverFixture previous, FileSystemDriverFixture current)
    : DriverMigrationTests<InMemoryDriverFixture, FileSystemDriverFixture>(previous, current), IClassFixture<InMemoryDriverFixture>, IClassFixture<FileSystemDriverFixture>
{
    [Fact]
    public Task BackgroundMoversOnTwoServers_MoveEverySessionOnce_FromInMemory() => BackgroundMoversOnTwoServers_MoveEverySessionOnce();
}

public sealed class FileSystemToRedisMigrationTests(FileSystemDriverFixture previous, RedisDriverFixture current)
    : DriverMigrationTests<FileSystemDriverFixture, RedisDriverFixture>(previous, current), IClassFixture<FileSystemDriverFixture>, IClassFixture<RedisDriverFixture>
{
    [Fact]
    public async Task BackgroundMover_SaysTheFileSystemDriverCannotListItsSessions_AndSessionsStillMoveOnFirstUse()
    {
        await using var before = await StartBeforeAsync();
        var users = await SeedAsync(before, 1);
        var logs = new FakeLogCollector();

        await using var after = await StartAfterAsync(before, background: true, logs: logs);

        await WhenLoggedAsync(logs, "cannot list the sessions of the previous driver (FileSystemDriver)");
        Assert.Equal("u0", await ClientWithCookiesOf(after, users[0].Jar).GetStringAsync("/get?name=user"));
    }
}

public sealed class RedisToRedisClusterMigrationTests(RedisDriverFixture previous, RedisClusterDriverFixture current)
    : DriverMigrationTests<RedisDriverFixture, RedisClusterDriverFixture>(previous, current), IClassFixture<RedisDriverFixture>, IClassFixture<RedisClusterDriverFixture>
{
    [Fact]
    public Task BackgroundMoversOnTwoServers_MoveEverySessionOnce_FromRedis() => BackgroundMoversOnTwoServers_MoveEverySessionOnce();
}
