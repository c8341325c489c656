using System.Net;
using Asm.Caching.Sessions;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Locking;

/// <summary>The lock modes, end to end through the stock session middleware, on every driver.</summary>
public abstract class SessionLockingTests<TDriver>(TDriver driver) : IClassFixture<TDriver>
    where TDriver : class, IDriverFixture
{
    private readonly string _scope = Guid.NewGuid().ToString("N");

    protected TDriver Driver { get; } = driver;

    [Fact]
    public async Task Exclusive_HundredConcurrentIncrements_CountExactlyHundred()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => client.PostAsync("/exclusive/inc", null)));

        Assert.Equal("101", await client.GetStringAsync("/read/n"));
    }

    [Fact]
    public async Task Exclusive_ThirtyTwoParallelIncrementsOnOneSession_CountThirtyTwoWithAboutOneLoadEach()
    {
        ChaosSessionDriver? storage = null;
        await using var app = await StartAsync(services: services => storage = ChaosSessionDriver.Wrap(services));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);
        var before = storage!.LockedLoads;

        await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => client.PostAsync("/exclusive/inc", null)));

        Assert.Equal("33", await client.GetStringAsync("/read/n"));
        // The requests wait their turn in the app: only the first in line asks the storage, once the lock is free.
        // The bench's goal is 1.2 loads per acquisition; one process alone on the session makes exactly one.
        Assert.InRange(storage.LockedLoads - before, 32, 38);
        Assert.Equal(0, app.Session.LockQueueSessions);
    }

    [Fact]
    public async Task LockWaitTimeout_RequestsQueuedBehindAHolder_TimeOutWithoutAskingStorageAndLeaveNoEntries()
    {
        ChaosSessionDriver? storage = null;
        await using var app = await StartAsync(
            o => o.LockWaitTimeout = TimeSpan.FromMilliseconds(300),
            services: services => storage = ChaosSessionDriver.Wrap(services));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        var hold = client.PostAsync("/exclusive/hold", null);
        await app.Gates.Held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var before = storage!.LockedLoads;
        var messages = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => client.GetStringAsync("/exclusive/try-inc")));
        var asked = storage.LockedLoads - before;
        app.Gates.Release.SetResult();
        await hold;

        Assert.All(messages, m => Assert.StartsWith("SessionLockTimeoutException:", m));
        // The holder is of this app: all three waited in it, none asked the storage.
        Assert.Equal(0, asked);
        Assert.Equal(0, app.Session.LockQueueSessions);
        Assert.Equal("2", await (await client.PostAsync("/exclusive/inc", null)).Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Exclusive_RequestAbortedWhileQueued_LeavesTheQueueAndTheNextRequestGetsTheLock()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        var hold = client.PostAsync("/exclusive/hold", null);
        await app.Gates.Held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        using var abort = new CancellationTokenSource();
        var aborted = client.PostAsync("/exclusive/inc-abortable", null, abort.Token);
        await app.Session.WhenQueuedForLock(1).WaitAsync(TimeSpan.FromSeconds(10));
        var next = client.PostAsync("/exclusive/inc", null);
        await app.Session.WhenQueuedForLock(2).WaitAsync(TimeSpan.FromSeconds(10));
        await abort.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => aborted);
        app.Gates.Release.SetResult();
        await hold;

        // Handed to the aborted request, the turn would never come back: the next request would wait its whole 30 s.
        Assert.Equal("2", await (await next.WaitAsync(TimeSpan.FromSeconds(15))).Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Lockless_HundredConcurrentRequestsSettingTheirOwnKey_LeaveAllHundredKeys()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        await Task.WhenAll(Enumerable.Range(0, 100).Select(i => client.PostAsync($"/lockless/set/k{i}", null)));

        var keys = (await client.GetStringAsync("/read/keys")).Split(',');
        Assert.Equal(101, keys.Length);
        Assert.All(Enumerable.Range(0, 100), i => Assert.Contains($"k{i}", keys));
    }

    [Fact]
    public async Task ReadOnly_WhileExclusiveRequestHoldsTheLock_AnswersWithoutWaiting()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        var hold = client.PostAsync("/exclusive/hold", null);
        await app.Gates.Held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        // The hold lasts until the test releases it, so a read that waited for it would never answer: any bound proves
        // it did not wait, and a long one holds on a loaded machine.
        var read = await client.GetStringAsync("/read/n").WaitAsync(TimeSpan.FromSeconds(30));

        Assert.False(hold.IsCompleted);
        Assert.Equal("1", read);
        app.Gates.Release.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await hold).StatusCode);
    }

    [Fact]
    public async Task Exclusive_SecondRequest_WaitsForTheHolderAndSeesItsWrite()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        var hold = client.PostAsync("/exclusive/hold", null);
        await app.Gates.Held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var second = client.PostAsync("/exclusive/inc", null);
        await app.Session.WhenQueuedForLock(1).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(second.IsCompleted);

        app.Gates.Release.SetResult();
        await hold;
        Assert.Equal("2", await (await second).Content.ReadAsStringAsync());
        Assert.Equal("yes", await client.GetStringAsync("/read/held"));
    }

    [Fact]
    public async Task ReadOnly_Write_ThrowsNamingTheModeAndHowToEscalate()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        var message = await client.GetStringAsync("/read/try-write");

        Assert.Contains("SessionLockMode.ReadOnly", message);
        Assert.Contains("AcquireWriteLockAsync", message);
    }

    [Fact]
    public async Task ReadOnly_AcquireWriteLockAsync_EscalatesAndWrites()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        Assert.Equal("Exclusive:2", await client.GetStringAsync("/read/escalate"));
        Assert.Equal("2", await client.GetStringAsync("/read/n"));
    }

    [Fact]
    public async Task LockOnWrite_FirstWrite_TakesTheLockAndReloadsTheLatestData()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        // The LockOnWrite request reads n=1, then another request commits n=2 before it writes.
        var slow = client.PostAsync("/lock-on-write/append", null);
        await app.Gates.Held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await client.PostAsync("/exclusive/inc", null);
        app.Gates.Release.SetResult();

        Assert.Equal("read 1, wrote after 2", await (await slow).Content.ReadAsStringAsync());
        Assert.Equal("2", await client.GetStringAsync("/read/n"));
        Assert.Equal("yes", await client.GetStringAsync("/read/appended"));
    }

    [Fact]
    public async Task LockWaitTimeout_Throw_GivesSessionLockTimeoutException()
    {
        var message = await TryIncrementWhileHeldAsync(LockWaitFailure.Throw);

        Assert.StartsWith("SessionLockTimeoutException:", message);
        Assert.Contains("Exclusive lock", message);
    }

    [Fact]
    public async Task LockWaitTimeout_ContinueReadOnly_GivesAReadOnlySessionThatRefusesWrites()
    {
        var message = await TryIncrementWhileHeldAsync(LockWaitFailure.ContinueReadOnly);

        Assert.StartsWith("ReadOnly n=1 InvalidOperationException:", message);
    }

    [Fact]
    public async Task LostLease_Commit_IsRefusedFiresOnLockLostAndWritesNothing()
    {
        var lost = 0;
        ChaosSessionDriver? chaos = null;

        // A short real lease: Redis judges leases by its own clock, which no fake clock moves.
        await using var app = await StartAsync(
            o =>
            {
                o.LockLease = TimeSpan.FromSeconds(2);
                // The next request waits for the lease to run out: far longer than the default 10 s is allowed, so
                // that a loaded machine cannot make it give up before.
                o.LockWaitTimeout = TimeSpan.FromSeconds(60);
                o.Events.OnLockLost = _ =>
                {
                    Interlocked.Increment(ref lost);
                    return Task.CompletedTask;
                };
            },
            services: services => chaos = ChaosSessionDriver.Wrap(services));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        // The holder's renewals never arrive; its lease runs out and another request takes the lock and commits.
        chaos!.DropRenewals = true;
        var hold = client.PostAsync("/exclusive/hold?value=stale", null);
        await app.Gates.Held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("2", await (await client.PostAsync("/exclusive/inc", null)).Content.ReadAsStringAsync());
        app.Gates.Release.SetResult();
        await hold;

        Assert.Equal(1, lost);
        Assert.Equal("2", await client.GetStringAsync("/read/n"));
        Assert.Equal("", await client.GetStringAsync("/read/held"));
    }

    [Fact]
    public async Task Exclusive_LoadWhoseAnswerIsLost_DoesNotLeaveTheSessionLocked()
    {
        ChaosSessionDriver? chaos = null;
        await using var app = await StartAsync(
            o => o.LockWaitTimeout = TimeSpan.FromSeconds(5),
            services: services => chaos = ChaosSessionDriver.Wrap(services));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        // The storage grants the lock, but the request never hears of it and fails.
        chaos!.LoseLoadAnswers = true;
        await Assert.ThrowsAsync<SessionStorageException>(() => client.PostAsync("/exclusive/inc", null));
        chaos.LoseLoadAnswers = false;

        // The next request gets the lock at once, not after the 30-second lease.
        Assert.Equal("2", await (await client.PostAsync("/exclusive/inc", null)).Content.ReadAsStringAsync());
        Assert.False(chaos.WhenLockBusy(1).IsCompleted);
    }

    [Fact]
    public async Task RequestThatNeverTouchesTheSession_TakesNoLockAndMakesNoStorageCall()
    {
        ChaosSessionDriver? chaos = null;
        await using var app = await StartAsync(services: services => chaos = ChaosSessionDriver.Wrap(services));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);
        var before = chaos!.Calls;

        await client.GetStringAsync("/untouched");

        Assert.Equal(before, chaos.Calls);
    }

    [Fact]
    public async Task ReadOnlyRequest_MakesOneStorageCall_ReadWriteRequestTwo()
    {
        ChaosSessionDriver? chaos = null;
        await using var app = await StartAsync(services: services => chaos = ChaosSessionDriver.Wrap(services));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        var before = chaos!.Calls;
        await client.GetStringAsync("/read/n");
        Assert.Equal(1, chaos.Calls - before);

        before = chaos.Calls;
        await client.PostAsync("/exclusive/inc", null);
        Assert.Equal(2, chaos.Calls - before);
    }

    /// <summary>
    /// Tries an increment while another request holds the lock longer than the wait allows; returns what the trying
    /// endpoint saw, after checking that only the holder's write landed.
    /// </summary>
    [Fact]
    public async Task Exclusive_ExplicitCommitMidRequest_ThirtyParallelIncrementsCountThirtyAndLaterChangesAreWritten()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        await Task.WhenAll(Enumerable.Range(0, 30).Select(_ => client.PostAsync("/exclusive/inc-commit-inc", null)));

        Assert.Equal("31", await client.GetStringAsync("/read/n"));
        Assert.Equal("32", await (await client.PostAsync("/exclusive/inc-commit-inc", null)).Content.ReadAsStringAsync());
        Assert.Equal("32", await client.GetStringAsync("/read/after"));
    }

    [Theory]
    [InlineData("exclusive")]
    [InlineData("lockless")]
    public async Task ExplicitCommit_ThenTheFinalCommitWithNothingNew_WritesNothingMore(string mode)
    {
        ChaosSessionDriver? chaos = null;
        await using var app = await StartAsync(services: services => chaos = ChaosSessionDriver.Wrap(services));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);
        var (calls, commits) = (chaos!.Calls, chaos.Commits);

        Assert.Equal("1", await (await client.PostAsync($"/{mode}/set-commit", null)).Content.ReadAsStringAsync());

        // The explicit commit is the request's only write; the final one has nothing to write (Exclusive: it only
        // releases the lock the load took, so the next request gets it at once).
        Assert.Equal(1, chaos.Commits - commits);
        Assert.Equal(mode == "exclusive" ? 3 : 2, chaos.Calls - calls);
        Assert.Equal("committed", await client.GetStringAsync("/read/committed"));
        Assert.Equal("2", await (await client.PostAsync("/exclusive/inc", null)).Content.ReadAsStringAsync());
        Assert.False(chaos.WhenLockBusy(1).IsCompleted);
    }

    [Fact]
    public async Task Lockless_ExplicitCommits_WriteTheDeltaThenStartANewOneAndParallelRequestsKeepEveryName()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => client.PostAsync($"/lockless/commit-between/k{i}", null)));

        var keys = (await client.GetStringAsync("/read/keys")).Split(',');
        Assert.Equal(41, keys.Length);
        Assert.All(Enumerable.Range(0, 20), i =>
        {
            Assert.Contains($"k{i}-first", keys);
            Assert.Contains($"k{i}-second", keys);
        });
    }

    [Fact]
    public async Task LockOnWrite_ContinueReadOnlyAfterTheLockWait_WriteThrowsNamingTheWaitAndWritesNothing()
    {
        await using var app = await StartAsync(o =>
        {
            o.LockWaitTimeout = TimeSpan.FromMilliseconds(200);
            o.LockWaitFailure = LockWaitFailure.ContinueReadOnly;
        });
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        var hold = client.PostAsync("/exclusive/hold", null);
        await app.Gates.Held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var message = await client.GetStringAsync("/lock-on-write/try-inc");
        app.Gates.Release.SetResult();
        await hold;

        Assert.StartsWith("InvalidOperationException:", message);
        Assert.Contains("LockWaitTimeout", message);
        Assert.Equal("1", await client.GetStringAsync("/read/n"));
    }

    [Fact]
    public async Task SessionFirstUsedAfterItsRequest_ReadsWithoutLockingAndRefusesWrites()
    {
        await using var app = await StartAsync(o => o.LockWaitTimeout = TimeSpan.FromSeconds(5));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        Assert.Equal("ok", await (await client.PostAsync("/late", null)).Content.ReadAsStringAsync());
        var late = await app.Late.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.StartsWith("n=1 InvalidOperationException:", late);
        Assert.Contains("final commit", late);
        var next = await client.PostAsync("/exclusive/inc", null);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal("2", await next.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("/exclusive/two-loads")]
    [InlineData("/lock-on-write/two-escalations")]
    public async Task TwoTasksOfOneRequestTakingTheLockAtOnce_ShareOneLockedLoad_InsteadOfWaitingForTheirOwnLock(string path)
    {
        ChaosSessionDriver? storage = null;
        // Waiting for its own lock, the request would fail after this with a SessionLockTimeoutException.
        await using var app = await StartAsync(o => o.LockWaitTimeout = TimeSpan.FromSeconds(5), services: services => storage = ChaosSessionDriver.Wrap(services));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);
        var before = storage!.LockedLoads;
        storage.LoadDelay = TimeSpan.FromMilliseconds(100); // so that the two tasks' loads overlap, as on remote storage

        var response = await client.PostAsync(path, null);

        Assert.Equal("2", await response.Content.ReadAsStringAsync());
        Assert.Equal(1, storage.LockedLoads - before);
        Assert.Equal("3", await (await client.PostAsync("/exclusive/inc", null)).Content.ReadAsStringAsync());
        Assert.Equal(0, app.Session.LockQueueSessions);
    }

    [Fact]
    public async Task UnawaitedLoadStillWaitingWhenItsRequestEnds_GivesBackTheLockItGets_NextRequestIsNotBlocked()
    {
        await using var app = await StartAsync(o => o.LockWaitTimeout = TimeSpan.FromSeconds(5));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        var hold = client.PostAsync("/exclusive/hold", null);
        await app.Gates.Held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var unawaited = client.PostAsync("/exclusive/unawaited-load", null);
        await app.Session.WhenQueuedForLock(1).WaitAsync(TimeSpan.FromSeconds(10));
        app.UnawaitedQueued.SetResult();
        Assert.Equal("ok", await (await unawaited).Content.ReadAsStringAsync()); // its final commit ran while its load waited
        app.Gates.Release.SetResult();
        await hold;

        Assert.Equal("n=1", await app.Unawaited.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        // Kept and renewed for a request that is over, the lock would make this wait out its 5 s and fail.
        var next = await client.PostAsync("/exclusive/inc", null);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal("2", await next.Content.ReadAsStringAsync());
        Assert.Equal(0, app.Session.LockQueueSessions);
    }

    [Fact]
    public async Task Exclusive_ExplicitCommitFails_LaterWritesThrowAndTheFinalCommitWritesNothingWithoutTheLock()
    {
        ChaosSessionDriver? storage = null;
        await using var app = await StartAsync(services: services => storage = ChaosSessionDriver.Wrap(services));
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        var message = await (await client.PostAsync("/exclusive/failed-commit-then-set", null)).Content.ReadAsStringAsync();

        Assert.StartsWith("InvalidOperationException:", message);
        Assert.Contains("gave it back", message);
        Assert.Equal("1", await client.GetStringAsync("/read/n"));
        Assert.Equal("2", await (await client.PostAsync("/exclusive/inc", null)).Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task MaxSessionSize_SetPastIt_ThrowsNamingTheOptionAndWritesNothing()
    {
        await using var app = await StartAsync(o => o.MaxSessionSize = 1000);
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        Assert.Equal("set", await (await client.PostAsync("/big/900", null)).Content.ReadAsStringAsync());
        var refused = await (await client.PostAsync("/big/2000", null)).Content.ReadAsStringAsync();

        Assert.Contains("AsmSessionOptions.MaxSessionSize", refused);
        Assert.Contains("nothing was written", refused);
        Assert.Equal("1", await client.GetStringAsync("/read/n"));
    }

    private async Task<string> TryIncrementWhileHeldAsync(LockWaitFailure failure)
    {
        await using var app = await StartAsync(o =>
        {
            o.LockWaitTimeout = TimeSpan.FromMilliseconds(200);
            o.LockWaitFailure = failure;
        });
        var client = app.CreateClient();
        await client.PostAsync("/exclusive/inc", null);

        var hold = client.PostAsync("/exclusive/hold", null);
        await app.Gates.Held.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var message = await client.GetStringAsync("/exclusive/try-inc");
        app.Gates.Release.SetResult();
        await hold;

        Assert.Equal("1", await client.GetStringAsync("/read/n"));
        Assert.Equal("yes", await client.GetStringAsync("/read/held"));
        return message;
    }

    protected Task<LockingApp> StartAsync(
        Action<AsmSessionOptions>? configure = null, TimeProvider? time = null, Action<IServiceCollection>? services = null) =>
        LockingApp.StartAsync(b => Driver.Use(b, _scope), configure, time, services);
}

/// <summary>The app the locking tests drive: endpoints in each lock mode, and gates that hold a request on cue.</summary>
public sealed class LockingApp : IAsyncDisposable
{
    private SessionApp _app = null!;

    public Gates Gates { get; private set; } = new();

    /// <summary>Opened by the test once the load <c>/exclusive/unawaited-load</c> started waits for the lock.</summary>
    public TaskCompletionSource UnawaitedQueued { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>What the load <c>/exclusive/unawaited-load</c> did not await saw.</summary>
    public TaskCompletionSource<string> Unawaited { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>What <c>/late</c> saw when it used its session after the request.</summary>
    public TaskCompletionSource<string> Late { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static async Task<LockingApp> StartAsync(
        Action<IAsmSessionBuilder> driver, Action<AsmSessionOptions>? configure, TimeProvider? time, Action<IServiceCollection>? services)
    {
        var app = new LockingApp();
        app._app = await SessionApp.StartAsync(driver, app.Map, configure, time, services);
        return app;
    }

    public HttpClient CreateClient() => _app.CreateClient();

    /// <summary>The app under test.</summary>
    public SessionApp Session => _app;

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    private void Map(WebApplication app)
    {
        app.MapPost("/exclusive/inc", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            await Task.Yield();
            c.Session.SetInt32("n", n);
            return n;
        });
        app.MapPost("/exclusive/inc-abortable", async (HttpContext c) =>
        {
            await c.Session.LoadAsync(c.RequestAborted);
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            c.Session.SetInt32("n", n);
            return n;
        });
        app.MapPost("/exclusive/inc-commit-inc", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            c.Session.SetInt32("n", n);
            await c.Session.CommitAsync();
            c.Session.SetInt32("after", n);
            return n;
        });
        foreach (var (path, mode) in new[] { ("/exclusive/set-commit", SessionLockMode.Exclusive), ("/lockless/set-commit", SessionLockMode.Lockless) })
        {
            app.MapPost(path, async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                c.Session.SetString("committed", "committed");
                await c.Session.CommitAsync();
                return c.Session.GetInt32("n") ?? 0;
            }).WithSessionLock(mode);
        }

        app.MapPost("/lockless/commit-between/{name}", async (HttpContext c, string name) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString(name + "-first", "1");
            await c.Session.CommitAsync();
            await c.Session.CommitAsync();
            c.Session.SetString(name + "-second", "2");
            return "ok";
        }).WithSessionLock(SessionLockMode.Lockless);
        app.MapGet("/lock-on-write/try-inc", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            var n = c.Session.GetInt32("n") ?? 0;
            try
            {
                c.Session.SetInt32("n", n + 1);
                return "wrote";
            }
            catch (Exception e)
            {
                return $"{e.GetType().Name}: {e.Message}";
            }
        }).WithSessionLock(SessionLockMode.LockOnWrite);
        app.MapPost("/exclusive/unawaited-load", async (HttpContext c) =>
        {
            // A load the request starts but does not await: it is still waiting for the lock when the request ends.
            var session = c.Session;
            _ = Task.Run(async () =>
            {
                try
                {
                    await session.LoadAsync();
                    Unawaited.TrySetResult($"n={session.GetInt32("n") ?? 0}");
                }
                catch (Exception e)
                {
                    Unawaited.TrySetResult($"{e.GetType().Name}: {e.Message}");
                }
            });
            await UnawaitedQueued.Task;
            return "ok";
        });
        app.MapPost("/exclusive/failed-commit-then-set", async (HttpContext c, ISessionDriver driver) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetInt32("n", 50);
            var chaos = (ChaosSessionDriver)driver;
            chaos.FailCommits = true;
            try
            {
                await c.Session.CommitAsync();
            }
            catch (SessionStorageException)
            {
                // The app saw the failure; it goes on.
            }

            chaos.FailCommits = false;
            try
            {
                c.Session.SetInt32("n", 60);
                return "wrote";
            }
            catch (InvalidOperationException e)
            {
                return $"{e.GetType().Name}: {e.Message}";
            }
        });
        app.MapPost("/late", (HttpContext c) =>
        {
            var session = c.Session;
            c.Response.OnCompleted(async () =>
            {
                var n = (await Task.Run(() => session.GetInt32("n"))) ?? 0;
                try
                {
                    session.SetInt32("n", n + 100);
                    Late.TrySetResult($"n={n} wrote");
                }
                catch (InvalidOperationException e)
                {
                    Late.TrySetResult($"n={n} {nameof(InvalidOperationException)}: {e.Message}");
                }
            });
            return "ok";
        });
        app.MapPost("/big/{bytes:int}", async (HttpContext c, int bytes) =>
        {
            await c.Session.LoadAsync();
            try
            {
                c.Session.Set("big", new byte[bytes]);
                return "set";
            }
            catch (InvalidOperationException e)
            {
                return e.Message;
            }
        });
        app.MapGet("/exclusive/try-inc", async (HttpContext c) =>
        {
            try
            {
                await c.Session.LoadAsync();
                var n = c.Session.GetInt32("n") ?? 0;
                try
                {
                    c.Session.SetInt32("n", n + 1);
                }
                catch (InvalidOperationException e)
                {
                    return $"{c.Session.LockMode} n={n} {nameof(InvalidOperationException)}: {e.Message}";
                }

                return "wrote";
            }
            catch (SessionLockTimeoutException e)
            {
                return $"{nameof(SessionLockTimeoutException)}: {e.Message}";
            }
        });
        app.MapPost("/exclusive/hold", async (HttpContext c, string? value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("held", value ?? "yes");
            var gates = Gates;
            gates.Held.TrySetResult();
            await gates.Release.Task;
            Gates = new Gates();
        });
        app.MapPost("/exclusive/two-loads", async (HttpContext c) =>
        {
            // Two parts of one handler that each make sure the session is loaded, at once.
            await Task.WhenAll(c.Session.LoadAsync(), c.Session.LoadAsync());
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            c.Session.SetInt32("n", n);
            return n;
        });
        app.MapPost("/lock-on-write/two-escalations", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            await Task.WhenAll(c.Session.AcquireWriteLockAsync(), c.Session.AcquireWriteLockAsync());
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            c.Session.SetInt32("n", n);
            return n;
        }).WithSessionLock(SessionLockMode.LockOnWrite);
        app.MapPost("/lock-on-write/append", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            var read = c.Session.GetInt32("n");
            var gates = Gates;
            gates.Held.TrySetResult();
            await gates.Release.Task;
            Gates = new Gates();
            c.Session.SetString("appended", "yes");
            return $"read {read}, wrote after {c.Session.GetInt32("n")}";
        }).WithSessionLock(SessionLockMode.LockOnWrite);
        app.MapPost("/lockless/set/{name}", async (HttpContext c, string name) =>
            {
                await c.Session.LoadAsync();
                c.Session.SetString(name, "1");
            })
            .WithSessionLock(SessionLockMode.Lockless);
        var read = app.MapGroup("/read").WithSessionLock(SessionLockMode.ReadOnly);
        read.MapGet("/n", (HttpContext c) => c.Session.GetInt32("n") ?? 0);
        read.MapGet("/held", (HttpContext c) => c.Session.GetString("held") ?? "");
        read.MapGet("/committed", (HttpContext c) => c.Session.GetString("committed") ?? "");
        read.MapGet("/after", (HttpContext c) => c.Session.GetInt32("after") ?? 0);
        read.MapGet("/appended", (HttpContext c) => c.Session.GetString("appended") ?? "");
        read.MapGet("/keys", (HttpContext c) => string.Join(',', c.Session.Keys.Order()));
        read.MapGet("/try-write", (HttpContext c) =>
        {
            try
            {
                c.Session.SetString("x", "y");
                return "wrote";
            }
            catch (InvalidOperationException e)
            {
                return e.Message;
            }
        });
        read.MapGet("/escalate", async (HttpContext c) =>
        {
            await c.Session.AcquireWriteLockAsync();
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            c.Session.SetInt32("n", n);
            return $"{c.Session.LockMode}:{n}";
        });
        app.MapGet("/untouched", () => "ok");
    }
}

/// <summary>Holds a request inside its handler until the test releases it.</summary>
public sealed class Gates
{
    public TaskCompletionSource Held { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
