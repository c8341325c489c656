using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Asm.Caching.Drivers.Redis;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Asm.Testing.Redis;
using Asm.Testing.Waiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Redis;

/// <summary>
/// The hand-off of a session's lock between two requests of one process over Redis: the releasing request passes its
/// turn on as soon as its release is sent, and the next request's load travels to Redis right behind it, where it finds
/// the lock free. Shown with Redis held still (SIGSTOP) between the two: the next load is sent before the release has
/// answered. On a server of the test's own.
/// </summary>
public sealed class RedisLockHandOffTests : IAsyncLifetime
{
    /// <summary>Long enough that nothing times out while Redis is held still.</summary>
    private static readonly TimeSpan Patient = TimeSpan.FromSeconds(30);

    private readonly RedisServer _server = new();
    private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentQueue<string> _turns = new();

    public Task InitializeAsync() => _server.StartAsync();

    public Task DisposeAsync()
    {
        _server.Dispose();
        return Task.CompletedTask;
    }

    [Theory]
    [InlineData("/hold-and-write")]
    [InlineData("/hold-and-read")]
    public async Task Release_NextRequestOfTheProcessLoadsBeforeTheReleaseAnswers_AndFindsTheLockFree(string holdPath)
    {
        ChaosSessionDriver? storage = null;
        await using var app = await StartAsync(services: s => storage = ChaosSessionDriver.Wrap(s));
        var client = app.CreateClient();
        Assert.Equal("1", await PostAsync(client, "/inc"));
        await PostAsync(client, "/touch"); // Redis now knows the release script too: neither script is sent twice

        var (holder, waiter) = await HoldAndQueueAsync(app, client, holdPath);
        var loadsBefore = storage!.LockedLoads;

        _server.Pause();
        try
        {
            _release.SetResult();

            // Redis answers nothing now, so the holder's release cannot have answered: the next load was sent after it.
            await Eventually.HoldsAsync(() => Task.FromResult(storage.LockedLoads > loadsBefore), Patient, "the next load to be sent");
            Assert.False(holder.IsCompleted);
        }
        finally
        {
            _server.Resume();
        }

        Assert.Equal(HttpStatusCode.OK, (await holder).StatusCode);
        Assert.Equal("2", await (await waiter).EnsureSuccessStatusCode().Content.ReadAsStringAsync());
        Assert.Equal((0, loadsBefore + 1), (storage.LockBusyRequests, storage.LockedLoads));
        Assert.Equal(holdPath == "/hold-and-write" ? "yes" : "", await client.GetStringAsync("/held"));
        Assert.Equal(0, app.LockQueueSessions);
    }

    [Fact]
    public async Task Exclusive_FortyParallelIncrementsOnOneSession_CountFortyAndNoLoadFindsTheLockBusy()
    {
        ChaosSessionDriver? storage = null;
        await using var app = await StartAsync(services: s => storage = ChaosSessionDriver.Wrap(s));
        var client = app.CreateClient();
        Assert.Equal("1", await PostAsync(client, "/inc"));
        var loadsBefore = storage!.LockedLoads;

        await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => PostAsync(client, "/inc")));

        // Every load reached Redis behind the release before it: one load per increment, none refused.
        Assert.Equal("41", await client.GetStringAsync("/n"));
        Assert.Equal(loadsBefore + 40, storage.LockedLoads);
        Assert.Equal(0, storage.LockBusyRequests);
    }

    [Fact]
    public async Task ScriptsFlushedWhileTheLockIsHeld_ReleaseAndNextLoadAreSentAgain_InWhicheverOrder_AndBothSucceed()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        Assert.Equal("1", await PostAsync(client, "/inc"));

        var (holder, waiter) = await HoldAndQueueAsync(app, client, "/hold-and-write");

        // Both scripts now answer NOSCRIPT and are sent again with their text: the load may overtake the release, be
        // refused, and wait for it (the release wakes it).
        await _server.ExecuteAsync("SCRIPT", "FLUSH");
        _release.SetResult();

        Assert.Equal(HttpStatusCode.OK, (await holder.WaitAsync(Patient)).StatusCode);
        Assert.Equal("2", await (await waiter.WaitAsync(Patient)).EnsureSuccessStatusCode().Content.ReadAsStringAsync());
        Assert.Equal("yes", await client.GetStringAsync("/held"));
    }

    [Fact]
    public async Task WaiterInAnotherApp_IsServedBeforeTheRequestsQueuedInTheHoldersApp()
    {
        await using var app = await StartAsync();
        ChaosSessionDriver? elsewhere = null;
        await using var other = await StartAsync(services: s =>
        {
            SessionApp.ShareDataProtection(s, app.Services);
            elsewhere = ChaosSessionDriver.Wrap(s);
        });
        var client = app.CreateClient(out var jar);
        Assert.Equal("1", await PostAsync(client, "/inc"));
        await PostAsync(client, "/touch");
        var otherClient = other.CreateClient(out var otherJar);
        otherJar.Cookies.Add(jar.Cookies.GetAllCookies());

        // This app holds the lock with five requests queued behind it; the other app's request is refused and waits.
        var holder = client.PostAsync("/hold-and-write", null);
        await _held.Task.WaitAsync(Patient);
        var queued = Enumerable.Range(0, 5).Select(_ => client.PostAsync("/turn/here", null)).ToList();
        await app.WhenQueuedForLock(5).WaitAsync(Patient);
        var fromElsewhere = otherClient.PostAsync("/turn/elsewhere", null);
        await elsewhere!.WhenLockBusy(1).WaitAsync(Patient);

        // The release keeps the lock for the other app, and the load this app sent right behind it is refused. The
        // other app's request comes first, or second if it could not take the lock within the 200 ms kept for it.
        _release.SetResult();

        Assert.Equal(HttpStatusCode.OK, (await holder.WaitAsync(Patient)).StatusCode);
        foreach (var response in await Task.WhenAll([.. queued, fromElsewhere]).WaitAsync(Patient))
        {
            response.EnsureSuccessStatusCode();
        }

        Assert.Equal("7", await client.GetStringAsync("/n"));
        Assert.InRange(_turns.ToList().IndexOf("elsewhere"), 0, 1);
    }

    [Fact]
    public async Task WaiterInAnotherApp_GivenUpBeforeTheRelease_DelaysTheNextRequestByAtMostTheTimeKeptForIt()
    {
        ChaosSessionDriver? here = null;
        await using var app = await StartAsync(services: s => here = ChaosSessionDriver.Wrap(s));
        await using var other = await StartAsync(
            services: s => SessionApp.ShareDataProtection(s, app.Services),
            configure: o => o.LockWaitTimeout = TimeSpan.FromMilliseconds(200));
        var client = app.CreateClient(out var jar);
        Assert.Equal("1", await PostAsync(client, "/inc"));
        var otherClient = other.CreateClient(out var otherJar);
        otherJar.Cookies.Add(jar.Cookies.GetAllCookies());

        // The other app's request waits in line, then gives up: nobody there will take the lock kept for it.
        var (holder, waiter) = await HoldAndQueueAsync(app, client, "/hold-and-write");
        Assert.Equal(HttpStatusCode.InternalServerError, (await otherClient.PostAsync("/inc", null)).StatusCode);
        var busyBefore = here!.LockBusyRequests;
        var released = Stopwatch.StartNew();
        _release.SetResult();

        Assert.Equal(HttpStatusCode.OK, (await holder.WaitAsync(Patient)).StatusCode);
        Assert.Equal("2", await (await waiter.WaitAsync(Patient)).EnsureSuccessStatusCode().Content.ReadAsStringAsync());
        Assert.True(here.LockBusyRequests > busyBefore, "The lock was not kept for the app that gave up.");

        // 200 ms kept, then the waiter's next retry (at most 100 ms apart): far from the lease (LockLease, 60 s).
        Assert.InRange(released.Elapsed, TimeSpan.FromMilliseconds(150), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task WaitForReplicas_TheTurnPassesOnlyOnceTheReplicaHasTheReleasingCommit()
    {
        using var replica = new RedisServer { ExtraArguments = ["--replicaof", "127.0.0.1", _server.Port.ToString(CultureInfo.InvariantCulture)] };
        await replica.StartAsync();
        await Eventually.HoldsAsync(
            async () => (await _server.ExecuteTextAsync("INFO", "replication"))!.Contains("connected_slaves:1", StringComparison.Ordinal),
            Patient,
            "the replica to connect");
        ChaosSessionDriver? storage = null;
        await using var app = await StartAsync(o => o.WaitForReplicas = 1, s => storage = ChaosSessionDriver.Wrap(s));
        var client = app.CreateClient();
        Assert.Equal("1", await PostAsync(client, "/inc"));

        var (holder, waiter) = await HoldAndQueueAsync(app, client, "/hold-and-write");
        var loadsBefore = storage!.LockedLoads;

        // The replica is held still: the release runs on the primary, and its WAIT waits for the replica.
        replica.Pause();
        int loadsWhileStill;
        try
        {
            _release.SetResult();
            loadsWhileStill = await LoadsSentWhileStillAsync(storage, loadsBefore);
        }
        finally
        {
            replica.Resume();
        }

        Assert.Equal(0, loadsWhileStill);
        Assert.Equal(HttpStatusCode.OK, (await holder).StatusCode);
        Assert.Equal("2", await (await waiter).EnsureSuccessStatusCode().Content.ReadAsStringAsync());
        Assert.Equal(0, storage.LockBusyRequests);
    }

    [Fact]
    public async Task ReleaseSentIntoAStallLongerThanIOTimeout_BothRequestsFail_AndNoLockIsLeftBehind()
    {
        ChaosSessionDriver? storage = null;
        await using var app = await StartAsync(services: s => storage = ChaosSessionDriver.Wrap(s), ioTimeout: TimeSpan.FromSeconds(1));
        var client = app.CreateClient();
        Assert.Equal("1", await PostAsync(client, "/inc"));
        await PostAsync(client, "/touch");
        var (holder, waiter) = await HoldAndQueueAsync(app, client, "/hold-and-write");

        // The holder's commit and the waiter's load, sent behind it, both outlast IOTimeout: each gives its lease back
        // by its token, and those give-backs wait in line behind them until Redis runs again.
        _server.Pause();
        HttpResponseMessage queued;
        try
        {
            _release.SetResult();
            await holder.WaitAsync(Patient);
            queued = await waiter.WaitAsync(Patient);
        }
        finally
        {
            _server.Resume();
        }

        Assert.Equal(HttpStatusCode.InternalServerError, queued.StatusCode);

        // Whatever each request was told, no lease outlives it: the next request takes the lock at once, not after the
        // lease (LockLease, twice LockWaitTimeout, would fail it first).
        Assert.Equal("2", await PostAsync(client, "/inc"));
        Assert.Equal(0, storage!.LockBusyRequests);
        Assert.Equal(0, app.LockQueueSessions);
    }

    private Task<SessionApp> StartAsync(
        Action<RedisDriverOptions>? redis = null,
        Action<IServiceCollection>? services = null,
        TimeSpan? ioTimeout = null,
        Action<AsmSessionOptions>? configure = null) =>
        SessionApp.StartAsync(
            b => b.UseRedisDriver(o =>
            {
                // The client's own timeouts too (5 s by default): a loaded machine may hold Redis still longer.
                o.Configuration = string.Create(
                    CultureInfo.InvariantCulture, $"{_server.EndPoint},syncTimeout={Patient.TotalMilliseconds},asyncTimeout={Patient.TotalMilliseconds}");
                o.OperationTimeout = Patient;
                redis?.Invoke(o);
            }),
            Map,
            o =>
            {
                o.IOTimeout = ioTimeout ?? Patient;
                o.LockLease = Patient * 2;
                o.LockWaitTimeout = Patient;
                configure?.Invoke(o);
            },
            services: services);

    /// <summary>Starts a request that holds the lock at <paramref name="holdPath"/> until released, and an increment queued behind it.</summary>
    private async Task<(Task<HttpResponseMessage> Holder, Task<HttpResponseMessage> Waiter)> HoldAndQueueAsync(
        SessionApp app, HttpClient client, string holdPath)
    {
        var holder = client.PostAsync(holdPath, null);
        await _held.Task.WaitAsync(Patient);
        var waiter = client.PostAsync("/inc", null);
        await app.WhenQueuedForLock(1).WaitAsync(Patient);
        return (holder, waiter);
    }

    private static async Task<string> PostAsync(HttpClient client, string path) =>
        await (await client.PostAsync(path, null)).EnsureSuccessStatusCode().Content.ReadAsStringAsync();

    /// <summary>
    /// How many locked loads <paramref name="storage"/> was asked for beyond <paramref name="before"/> within a second
    /// (none is the answer that can only be judged at the end of a window: a load sent at once shows within milliseconds).
    /// </summary>
    private static async Task<int> LoadsSentWhileStillAsync(ChaosSessionDriver storage, int before)
    {
        var still = Stopwatch.StartNew();
        while (storage.LockedLoads == before && still.Elapsed < TimeSpan.FromSeconds(1))
        {
            await Task.Delay(5);
        }

        return storage.LockedLoads - before;
    }

    private void Map(WebApplication app)
    {
        app.AnswerExceptionsWith500(_ => { });
        app.MapPost("/inc", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetInt32("n", (c.Session.GetInt32("n") ?? 0) + 1);
            return c.Session.GetInt32("n");
        });
        app.MapPost("/hold-and-write", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("held", "yes");
            _held.TrySetResult();
            await _release.Task;
        });
        app.MapPost("/turn/{app}", async (HttpContext c, string app) =>
        {
            await c.Session.LoadAsync();
            _turns.Enqueue(app);
            c.Session.SetInt32("n", (c.Session.GetInt32("n") ?? 0) + 1);
        });
        app.MapPost("/hold-and-read", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            _held.TrySetResult();
            await _release.Task;
        });
        app.MapPost("/touch", async (HttpContext c) => await c.Session.LoadAsync());
        app.MapGet("/n", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetInt32("n") ?? 0;
        }).WithSessionLock(SessionLockMode.ReadOnly);
        app.MapGet("/held", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString("held") ?? "";
        }).WithSessionLock(SessionLockMode.ReadOnly);
    }
}
