using System.Diagnostics;
using System.Globalization;
using Asm.Caching.Caching;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using Asm.Testing.Waiting;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// Redis going away and coming back under a running driver. The server is this class's own (it is killed) and keeps
/// an fsync-always append-only file, so what was committed before the kill is there after the restart.
/// </summary>
public sealed class RedisOutageTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(30);

    // Redis holds writes (every script among them) for a minute, twice as long as a prompt failure may take, so a
    // failure inside the bound was not Redis waking up, however busy the machine; the test unpauses it as soon as
    // the failure is seen, which a WRITE pause lets through.
    private const string PauseMilliseconds = "60000";
    private static readonly TimeSpan PromptBound = TimeSpan.FromSeconds(30);

    private readonly RedisServer _server = new() { ExtraArguments = ["--appendonly", "yes", "--appendfsync", "always"] };
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private RedisTestDrivers _drivers = null!;

    public async Task InitializeAsync()
    {
        await _server.StartAsync();
        _drivers = new RedisTestDrivers(_server.EndPoint);
    }

    public Task DisposeAsync()
    {
        _drivers.Dispose();
        _server.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>
    /// A Redis at its memory limit under <c>noeviction</c> refuses every write that needs memory (<c>OOM</c>). Ending a
    /// session must not need any, as on a full disk (see the filesystem driver): a log-out still ends the session.
    /// </summary>
    [Fact]
    public async Task DestroyAndExpire_RedisAtItsMemoryLimit_EndTheSessionAndItsLockHoldersCommitIsRefused()
    {
        var driver = _drivers.Create(_clock);
        var destroyed = await SessionSteps.CreateAsync(driver, _clock);
        var expired = await SessionSteps.CreateAsync(driver, _clock);
        var lease = (await SessionSteps.LoadAsync(driver, _clock, destroyed, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
        var loadedAt = _clock.GetUtcNow();
        await _server.ExecuteAsync("CONFIG", "SET", "maxmemory", "1");
        // Redis now refuses what needs memory: a commit fails as it does on a full disk.
        await Assert.ThrowsAsync<RedisDriverException>(() => SessionSteps.CreateAsync(driver, _clock));

        await driver.DestroyAsync(destroyed.Id, _clock.GetUtcNow(), _clock.GetUtcNow().AddHours(1), CancellationToken.None);
        _clock.Advance(SessionSteps.Idle + TimeSpan.FromMinutes(1));
        var info = await driver.GetInfoAsync(expired.Id, CancellationToken.None);
        Assert.True(await driver.ExpireSessionAsync(expired.Id, info!.IdleExpiresAt, CancellationToken.None));

        Assert.NotEqual(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(driver, _clock, destroyed, new() { ["a"] = [2] }, lease, releaseLock: true));
        foreach (var key in new[] { destroyed, expired })
        {
            // Read as by a server whose clock is still where it was: the session must not be served there either.
            var load = await driver.LoadAsync(new SessionLoadRequest { Key = key, Now = loadedAt, IdleTimeout = SessionSteps.Idle }, CancellationToken.None);
            Assert.NotEqual(SessionLoadStatus.Found, load.Status);
        }
    }

    /// <summary>
    /// A release that keeps the lock for the app first in its waiting line writes the lock's fields (<c>HSET</c>), a
    /// write Redis at its memory limit refuses (<c>OOM</c>) as a script's first write. It runs after the line's
    /// <c>ZPOPMIN</c>, which needs no memory, and a script that has written once is not stopped half-way: the hand-over
    /// is made at the limit.
    /// </summary>
    [Fact]
    public async Task ReleaseLockAsync_RedisAtItsMemoryLimitWithAnotherAppWaiting_HandsTheLockOverToIt()
    {
        var holder = _drivers.Create(_clock);
        var waiter = _drivers.Create(_clock);
        var key = await SessionSteps.CreateAsync(holder, _clock);
        var lease = (await SessionSteps.LoadAsync(holder, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
        Assert.Equal(SessionLoadStatus.LockBusy, (await SessionSteps.LoadAsync(waiter, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Status);
        await _server.ExecuteAsync("CONFIG", "SET", "maxmemory", "1");
        object? kept;
        try
        {
            await Assert.ThrowsAsync<RedisDriverException>(() => SessionSteps.CreateAsync(holder, _clock));

            await holder.ReleaseLockAsync(key.Id, lease, CancellationToken.None);
            kept = await _server.ExecuteTextAsync("HGET", holder.SessionKeyOf(key.Id), "lt");
        }
        finally
        {
            await _server.ExecuteAsync("CONFIG", "SET", "maxmemory", "0");
        }

        Assert.Equal("~" + waiter.Party, kept);
        Assert.Equal(SessionLoadStatus.Found, (await SessionSteps.LoadAsync(waiter, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Status);
    }

    [Fact]
    public async Task Operations_WhileRedisIsDown_ThrowRedisDriverExceptionNamingEndpointThenSucceedOnSameDriverOnceBack()
    {
        var logger = new FakeLogger<RedisDriver>();
        // Failing while Redis is down is immediate whatever the timeout; a long one keeps a starved thread pool on a
        // busy machine from failing the first commits after the restart, which this test does not measure.
        var driver = _drivers.Create(_clock, logger, options => options.OperationTimeout = TimeSpan.FromSeconds(30));
        var key = await SessionSteps.CreateAsync(driver, _clock, new() { ["a"] = [1] });
        var lease = (await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;

        _server.Stop();

        var failures = new List<RedisDriverException>
        {
            await Assert.ThrowsAsync<RedisDriverException>(() => SessionSteps.CommitAsync(driver, _clock, key, new() { ["a"] = [2] }, lease, releaseLock: true)),
            await Assert.ThrowsAsync<RedisDriverException>(() => SessionSteps.LoadAsync(driver, _clock, key)),
            await Assert.ThrowsAsync<RedisDriverException>(() => driver.RenewLockAsync(key.Id, lease, _clock.GetUtcNow(), CancellationToken.None).AsTask()),
            await Assert.ThrowsAsync<RedisDriverException>(() => driver.GetAsync("key", _clock.GetUtcNow(), CancellationToken.None).AsTask()),
            await Assert.ThrowsAsync<RedisDriverException>(() => driver.RemoveAsync("key", CancellationToken.None).AsTask()),
        };
        foreach (var failure in failures)
        {
            output.WriteLine(failure.Message);
            Assert.Contains("Redis", failure.Message, StringComparison.Ordinal);
            Assert.Contains(_server.EndPoint, failure.Message, StringComparison.Ordinal);
            Assert.Equal(_server.EndPoint, failure.EndPoints);
            Assert.DoesNotContain(key.Id, failure.Message, StringComparison.Ordinal);
            Assert.IsAssignableFrom<InvalidOperationException>(failure);
        }

        // A lock waiter is not failed by the outage: it waits its bounded time (on the real clock).
        await _drivers.Create(TimeProvider.System).WaitForReleaseAsync(key.Id, TimeSpan.FromMilliseconds(10), CancellationToken.None);

        await _server.StartAsync();
        var watch = Stopwatch.StartNew();
        var loaded = await EventuallyAsync(() => SessionSteps.LoadAsync(driver, _clock, key));
        output.WriteLine($"Operations succeeded again {watch.Elapsed.TotalMilliseconds:F0} ms after Redis restarted.");

        // Nothing is corrupted: the commit that failed wrote nothing, and the lease taken before the outage still holds.
        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal([1], loaded.Values["a"]);
        Assert.Equal(SessionLoadStatus.LockBusy, (await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Status);
        Assert.Equal(SessionCommitStatus.Committed, await SessionSteps.CommitAsync(driver, _clock, key, new() { ["a"] = [3] }, lease, releaseLock: true));
        Assert.Equal([3], (await SessionSteps.LoadAsync(driver, _clock, key)).Values["a"]);

        // Everything else works on the same driver instance, lock hand-off included.
        var fresh = await SessionSteps.CreateAsync(driver, _clock);
        await driver.SetAsync("key", [9], new CacheEntryExpiration(_clock.GetUtcNow(), null, null), CancellationToken.None);
        Assert.Equal([9], await driver.GetAsync("key", _clock.GetUtcNow(), CancellationToken.None));
        await AssertReleaseWakesWaiterAsync(fresh);

        Assert.Contains(logger.Collector.GetSnapshot(), e => e.Id.Id == 302);
        Assert.Contains(logger.Collector.GetSnapshot(), e => e.Id.Id == 303);
        Assert.All(logger.Collector.GetSnapshot(), e => Assert.InRange(e.Id.Id, 300, 399));
        Assert.All(logger.Collector.GetSnapshot(), e => Assert.DoesNotContain(key.Id, e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task FirstOperation_WhileRedisIsDown_ThrowsThenConnectsOnceRedisIsUp()
    {
        _server.Stop();
        var driver = _drivers.Create(_clock);

        var failure = await Assert.ThrowsAsync<RedisDriverException>(() => SessionSteps.LoadAsync(driver, _clock, SessionKey.New()));
        output.WriteLine(failure.Message);
        Assert.Contains(_server.EndPoint, failure.Message, StringComparison.Ordinal);

        await _server.StartAsync();
        var key = await EventuallyAsync(() => SessionSteps.CreateAsync(driver, _clock));
        Assert.Equal(SessionLoadStatus.Found, (await SessionSteps.LoadAsync(driver, _clock, key)).Status);
    }

    [Fact]
    public async Task LoadAsync_RedisPausedAndTokenCancelled_ThrowsOperationCanceledPromptly()
    {
        var driver = _drivers.Create(_clock);
        var key = await SessionSteps.CreateAsync(driver, _clock);
        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        // A load without a lease is a plain read, which a WRITE pause lets through: the server is stopped instead.
        _server.Pause();
        var watch = Stopwatch.StartNew();
        try
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SessionSteps.LoadAsync(driver, _clock, key, cancellationToken: cancellation.Token));
        }
        finally
        {
            _server.Resume();
        }

        Assert.True(watch.Elapsed < PromptBound, $"Cancelling took {watch.Elapsed}.");
        Assert.Equal(SessionLoadStatus.Found, (await EventuallyAsync(() => SessionSteps.LoadAsync(driver, _clock, key))).Status);
    }

    [Fact]
    public async Task LoadAsync_RedisHangsLongerThanOperationTimeout_ThrowsRedisDriverExceptionSayingOutcomeUnknown()
    {
        var key = await SessionSteps.CreateAsync(_drivers.Create(_clock), _clock);
        var driver = _drivers.Create(_clock, configure: options => options.OperationTimeout = TimeSpan.FromMilliseconds(200));
        await EventuallyAsync(() => SessionSteps.LoadAsync(driver, _clock, key)); // connected: only the stopped load may time out

        // A load without a lease is a plain read, which a WRITE pause lets through: the server is stopped instead.
        _server.Pause();
        var watch = Stopwatch.StartNew();
        RedisDriverException failure;
        try
        {
            failure = await Assert.ThrowsAsync<RedisDriverException>(() => SessionSteps.LoadAsync(driver, _clock, key));
        }
        finally
        {
            _server.Resume();
        }

        output.WriteLine(failure.Message);
        Assert.True(watch.Elapsed < PromptBound, $"Timing out took {watch.Elapsed}.");
        Assert.Contains(_server.EndPoint, failure.Message, StringComparison.Ordinal);
        Assert.Contains("RedisDriverOptions.OperationTimeout", failure.Message, StringComparison.Ordinal);
        Assert.IsType<TimeoutException>(failure.InnerException);
        Assert.Equal(SessionLoadStatus.Found, (await EventuallyAsync(() => SessionSteps.LoadAsync(driver, _clock, key))).Status);
    }

    [Fact]
    public async Task LoadAsync_WhileRedisHoldsWrites_ReadsWithoutALeaseAndTimesOutWithOne()
    {
        // What a failover does for a moment (CLIENT PAUSE WRITE): a read goes on, a load that would take the lock waits.
        var key = await SessionSteps.CreateAsync(_drivers.Create(_clock), _clock, new() { ["a"] = [1] });
        var driver = _drivers.Create(_clock, configure: options => options.OperationTimeout = TimeSpan.FromMilliseconds(500));
        await EventuallyAsync(() => SessionSteps.LoadAsync(driver, _clock, key));
        await _server.ExecuteAsync("CLIENT", "PAUSE", PauseMilliseconds, "WRITE");
        try
        {
            var read = await SessionSteps.LoadAsync(driver, _clock, key);
            var locking = await Assert.ThrowsAsync<RedisDriverException>(
                () => SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration)));

            Assert.Equal(SessionLoadStatus.Found, read.Status);
            Assert.Equal([1], read.Values["a"]);
            Assert.IsType<TimeoutException>(locking.InnerException);
        }
        finally
        {
            await _server.ExecuteAsync("CLIENT", "UNPAUSE");
        }
    }

    [Fact]
    public async Task LoadAsync_OperationTimeoutLongerThanTheClientsOwn_WaitsForRedisThatLong()
    {
        // OperationTimeout 60 s, the client's own asyncTimeout left at its 5 s default: Redis holds the locking load's
        // script for 8 s (CLIENT PAUSE WRITE, lifted by itself), and the load must get its answer, not the client's timeout.
        var key = await SessionSteps.CreateAsync(_drivers.Create(_clock), _clock, new() { ["a"] = [1] });
        var driver = _drivers.Create(_clock, configure: options => options.OperationTimeout = TimeSpan.FromSeconds(60));
        await EventuallyAsync(() => SessionSteps.LoadAsync(driver, _clock, key));
        await _server.ExecuteAsync("CLIENT", "PAUSE", "8000", "WRITE");
        var watch = Stopwatch.StartNew();

        var locked = await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration));

        output.WriteLine($"Answered after {watch.Elapsed}.");
        Assert.Equal(SessionLoadStatus.Found, locked.Status);
        Assert.NotNull(locked.Lease);
        Assert.Equal([1], locked.Values["a"]);
    }

    [Fact]
    public async Task LoadAsync_ReadAnsweredLateThenSlideHeld_FailsWithinOneOperationTimeout()
    {
        // A load without a lease whose idle expiry is due to slide reads, then runs the Load script: one operation. The
        // read is answered late (Redis stopped for two thirds of the timeout) and the script never (writes held).
        var timeout = TimeSpan.FromSeconds(3);
        var key = await SessionSteps.CreateAsync(_drivers.Create(_clock), _clock);
        var driver = _drivers.Create(_clock, configure: options => options.OperationTimeout = timeout);
        await EventuallyAsync(() => SessionSteps.LoadAsync(driver, _clock, key));
        _clock.Advance(SessionSteps.Idle / 4);
        await _server.ExecuteAsync("CLIENT", "PAUSE", PauseMilliseconds, "WRITE");
        RedisDriverException failure;
        var watch = Stopwatch.StartNew();
        try
        {
            _server.Pause();
            var load = SessionSteps.LoadAsync(driver, _clock, key);
            await Task.Delay(timeout * 2 / 3);
            _server.Resume();
            failure = await Assert.ThrowsAsync<RedisDriverException>(() => load);
        }
        finally
        {
            _server.Resume();
            await _server.ExecuteAsync("CLIENT", "UNPAUSE");
        }

        // The read and the script share the timeout: the failure comes at 3 s, not 2 s + 3 s.
        output.WriteLine($"{watch.Elapsed}: {failure.Message}");
        Assert.True(watch.Elapsed < timeout + (timeout / 3), $"The load failed after {watch.Elapsed}, its timeout being {timeout}.");
        Assert.Contains("RedisDriverOptions.OperationTimeout", failure.Message, StringComparison.Ordinal);
        Assert.Equal(SessionLoadStatus.Found, (await SessionSteps.LoadAsync(driver, _clock, key)).Status);
    }

    [Fact]
    public async Task AppMultiplexerWithDetailedExceptions_ClientTimesOutAReadAndAScriptQueuedBehindIt_NoFailureNamesASessionId()
    {
        // The application's own multiplexer keeps the client's default (exception messages describe the commands
        // queued on the connection) and times commands out before the driver does.
        var configuration = ConfigurationOptions.Parse(_server.EndPoint);
        configuration.AbortOnConnectFail = false;
        configuration.AsyncTimeout = 1000;
        Assert.True(configuration.IncludeDetailInExceptions);
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);
        var logger = new FakeLogger<RedisDriver>();
        var driver = _drivers.Create(_clock, logger, options =>
        {
            options.ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer);
            options.OperationTimeout = TimeSpan.FromSeconds(30);
        });
        var read = await SessionSteps.CreateAsync(driver, _clock);
        var written = await SessionSteps.CreateAsync(driver, _clock);
        var failures = new List<RedisDriverException>();
        try
        {
            _server.Pause();
            var load = SessionSteps.LoadAsync(driver, _clock, read);
            var commit = SessionSteps.CommitAsync(driver, _clock, written, new() { ["a"] = [2] });
            failures.Add(await Assert.ThrowsAsync<RedisDriverException>(() => load));
            failures.Add(await Assert.ThrowsAsync<RedisDriverException>(() => commit));
        }
        finally
        {
            _server.Resume();
        }

        foreach (var failure in failures)
        {
            output.WriteLine(failure.ToString());
            Assert.IsAssignableFrom<TimeoutException>(failure.InnerException);
            for (Exception? ex = failure; ex is not null; ex = ex.InnerException)
            {
                var text = ex.Message + string.Join(" ", ex.Data.Values.Cast<object?>());
                Assert.DoesNotContain(read.Id, text, StringComparison.Ordinal);
                Assert.DoesNotContain(written.Id, text, StringComparison.Ordinal);
            }
        }

        Assert.All(logger.Collector.GetSnapshot(), e =>
        {
            Assert.DoesNotContain(read.Id, e.Message + e.Exception, StringComparison.Ordinal);
            Assert.DoesNotContain(written.Id, e.Message + e.Exception, StringComparison.Ordinal);
        });
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClientTimesOutACacheRemoval_NoFailureNamesTheCacheKey(bool appMultiplexer)
    {
        // A cache key may hold what an app knows of a user (an email, an id). A removal is a plain UNLINK, which the
        // client describes by its key: in a timeout's Data always, and in its message too with an application's own
        // multiplexer (details in exceptions, the client's default). The client times it out before the driver does.
        const string CacheKey = "profile:alice@example.com";
        var configuration = ConfigurationOptions.Parse(_server.EndPoint);
        configuration.AbortOnConnectFail = false;
        configuration.AsyncTimeout = 1000;
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);
        var logger = new FakeLogger<RedisDriver>();
        var driver = _drivers.Create(_clock, logger, options =>
        {
            if (appMultiplexer)
            {
                options.ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer);
            }
            else
            {
                options.Configuration += ",asyncTimeout=1000";
            }

            options.OperationTimeout = TimeSpan.FromSeconds(30);
        });
        await driver.SetAsync(CacheKey, [1], new CacheEntryExpiration(_clock.GetUtcNow(), null, null), CancellationToken.None);
        RedisDriverException failure;
        try
        {
            _server.Pause();
            failure = await Assert.ThrowsAsync<RedisDriverException>(() => driver.RemoveAsync(CacheKey, CancellationToken.None).AsTask());
        }
        finally
        {
            _server.Resume();
        }

        output.WriteLine(failure.ToString());
        Assert.IsAssignableFrom<TimeoutException>(failure.InnerException);
        for (Exception? ex = failure; ex is not null; ex = ex.InnerException)
        {
            Assert.DoesNotContain(CacheKey, ex.Message + string.Join(" ", ex.Data.Values.Cast<object?>()), StringComparison.Ordinal);
        }

        Assert.All(logger.Collector.GetSnapshot(), e => Assert.DoesNotContain(CacheKey, e.Message + e.Exception, StringComparison.Ordinal));
    }

    [Fact]
    public async Task CommitAsync_RedisHangsLongerThanOperationTimeout_SaysOutcomeUnknownAndIsAppliedOnceWhenRedisWakes()
    {
        var key = await SessionSteps.CreateAsync(_drivers.Create(_clock), _clock, new() { ["a"] = [1] });
        var driver = _drivers.Create(_clock, configure: options => options.OperationTimeout = TimeSpan.FromMilliseconds(200));
        var lease = (await EventuallyAsync(() => SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration)))).Lease!;
        await _server.ExecuteAsync("CLIENT", "PAUSE", PauseMilliseconds, "WRITE");

        var failure = await Assert.ThrowsAsync<RedisDriverException>(
            () => SessionSteps.CommitAsync(driver, _clock, key, new() { ["a"] = [2] }, lease, releaseLock: true));
        output.WriteLine(failure.Message);
        Assert.Contains("outcome is unknown", failure.Message, StringComparison.Ordinal);

        // The commit was sent before the timeout: Redis runs it when it wakes, once (the driver never sends it again).
        await _server.ExecuteAsync("CLIENT", "UNPAUSE");
        var loaded = await EventuallyAsync(() => SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration)));
        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal([2], loaded.Values["a"]);
        Assert.Equal(lease.Fence + 1, loaded.Lease!.Fence);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ReleaseLockAsync_TimesOutOrIsCancelledThenRedisAnswersNoScript_IsSentAgainAndTheLockIsFreeLongBeforeItsLeaseEnds(bool cancelled)
    {
        // The release is held (CLIENT PAUSE WRITE) past its timeout, or until its caller cancels; meanwhile Redis's
        // script cache is emptied (a SCRIPT FLUSH, which the pause lets through, as a restart or a failover to a replica
        // empties it), so that it answers NOSCRIPT, having run nothing, once it wakes. The lease is 10 minutes: the lock
        // must be free long before.
        var lease = TimeSpan.FromMinutes(10);
        var key = await SessionSteps.CreateAsync(_drivers.Create(_clock), _clock);
        // The client's own timeout (asyncTimeout, 5 s by default) is put out of the way: the driver's ends the wait.
        var driver = _drivers.Create(_clock, configure: options =>
        {
            options.Configuration += ",asyncTimeout=120000";
            options.OperationTimeout = TimeSpan.FromSeconds(cancelled ? 60 : 5);
        });
        var held = (await EventuallyAsync(() => SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(lease)))).Lease!;
        await _server.ExecuteAsync("CLIENT", "PAUSE", PauseMilliseconds, "WRITE");
        try
        {
            if (cancelled)
            {
                using var cancellation = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => driver.ReleaseLockAsync(key.Id, held, cancellation.Token).AsTask());
            }
            else
            {
                var failure = await Assert.ThrowsAsync<RedisDriverException>(() => driver.ReleaseLockAsync(key.Id, held, CancellationToken.None).AsTask());
                Assert.IsType<TimeoutException>(failure.InnerException);
            }

            await _server.ExecuteAsync("SCRIPT", "FLUSH");
        }
        finally
        {
            await _server.ExecuteAsync("CLIENT", "UNPAUSE");
        }

        await WaitUntilTheLockIsFreeAsync(_drivers.Create(_clock), key, lease, PromptBound, "after Redis woke");
    }

    [Fact]
    public async Task ReleaseLockAsync_WhileRedisIsDown_IsSentOnceRedisIsBackAndTheLockIsFreeLongBeforeItsLeaseEnds()
    {
        // Redis keeps its data (append-only file), the lock among it; the release fails at once while Redis is down.
        // The driver's clock times the release's resends, apart from the sessions' clock, which stays put.
        var lease = TimeSpan.FromMinutes(10);
        var key = await SessionSteps.CreateAsync(_drivers.Create(_clock), _clock);
        var resends = new FakeTimeProvider(_clock.GetUtcNow());
        var driver = _drivers.Create(resends, configure: options => options.OperationTimeout = TimeSpan.FromSeconds(30));
        var held = (await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(lease))).Lease!;
        _server.Stop();
        await Assert.ThrowsAsync<RedisDriverException>(() => driver.ReleaseLockAsync(key.Id, held, CancellationToken.None).AsTask());
        await _server.StartAsync();

        await WaitUntilTheLockIsFreeAsync(
            _drivers.Create(_clock), key, lease, RecoveryTimeout * 2, "after Redis came back", eachTry: () => resends.Advance(RedisGiveBacks.Interval));
    }

    [Fact]
    public async Task ReleaseLockAsync_ManyFailWhileRedisIsDown_AreSentAgainByOneLoopOnOneTimerAndEveryLockIsFreeOnceRedisIsBack()
    {
        // Every release fails at once while Redis is down, and is sent again until Redis answers: 300 of them must cost
        // one loop on one timer of the driver's clock (which times the resends, apart from the sessions' clock), not a
        // loop and a timer each.
        const int Locks = 300;
        var lease = TimeSpan.FromMinutes(10);
        var resends = new TimerCountingTimeProvider(new FakeTimeProvider(_clock.GetUtcNow()));
        var driver = _drivers.Create(resends, configure: options => options.OperationTimeout = TimeSpan.FromSeconds(30));
        var keys = new List<SessionKey>();
        var leases = new List<SessionLease>();
        for (var i = 0; i < Locks; i++)
        {
            keys.Add(await SessionSteps.CreateAsync(driver, _clock));
            leases.Add((await SessionSteps.LoadAsync(driver, _clock, keys[i], SessionLease.Create(lease))).Lease!);
        }

        _server.Stop();
        var timersBefore = Timer.ActiveCount;
        for (var i = 0; i < Locks; i++)
        {
            await Assert.ThrowsAsync<RedisDriverException>(() => driver.ReleaseLockAsync(keys[i].Id, leases[i], CancellationToken.None).AsTask());
        }

        var timersAdded = Timer.ActiveCount - timersBefore;
        output.WriteLine($"{Locks} failed releases: {timersAdded} more timers in the process, at most {resends.MostActive} at once on the driver's clock.");
        Assert.Equal(Locks, driver.GiveBacks.Count);
        Assert.True(driver.GiveBacks.Draining);
        Assert.True(timersAdded < Locks / 3, $"{Locks} failed releases added {timersAdded} timers.");
        Assert.InRange(resends.MostActive, 1, 1);

        // Once Redis is back, a round sends them all: every lock is free, and the loop ends.
        await _server.StartAsync();
        var next = _drivers.Create(_clock);
        var watch = Stopwatch.StartNew();
        await Eventually.HoldsAsync(
            () =>
            {
                resends.Clock.Advance(RedisGiveBacks.Interval);
                return Task.FromResult(driver.GiveBacks.Count == 0);
            },
            RecoveryTimeout * 2,
            "every release to be answered");
        output.WriteLine($"Every release was answered {watch.Elapsed.TotalMilliseconds:F0} ms after Redis restarted.");
        Assert.InRange(resends.MostActive, 1, 1);
        foreach (var key in keys)
        {
            Assert.Equal(SessionLoadStatus.Found, (await SessionSteps.LoadAsync(next, _clock, key, SessionLease.Create(lease))).Status);
        }

        await Eventually.HoldsAsync(() => Task.FromResult(!driver.GiveBacks.Draining), PromptBound, "the resend loop to end");
    }

    [Fact]
    public async Task ReleaseLockAsync_FailsWhileRedisStaysDown_IsNoLongerSentOnceItsLeaseHasRunOut()
    {
        var lease = TimeSpan.FromSeconds(30);
        var resends = new FakeTimeProvider(_clock.GetUtcNow());
        var driver = _drivers.Create(resends, configure: options => options.OperationTimeout = TimeSpan.FromSeconds(30));
        var key = await SessionSteps.CreateAsync(driver, _clock);
        var held = (await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(lease))).Lease!;
        _server.Stop();
        await Assert.ThrowsAsync<RedisDriverException>(() => driver.ReleaseLockAsync(key.Id, held, CancellationToken.None).AsTask());
        Assert.Equal(1, driver.GiveBacks.Count);

        resends.Advance(lease - RedisGiveBacks.Interval);
        Assert.Equal(1, driver.GiveBacks.Count);
        await Eventually.HoldsAsync(
            () =>
            {
                resends.Advance(RedisGiveBacks.Interval);
                return Task.FromResult(!driver.GiveBacks.Draining);
            },
            PromptBound,
            "the resend loop to end");
        Assert.Equal(0, driver.GiveBacks.Count);
    }

    [Fact]
    public async Task ReleaseLockAsync_MasterJustDemotedByAFailover_IsSentAgainToTheNewMasterAndTheLockIsFreeLongBeforeItsLeaseEnds()
    {
        // The driver knows two servers: this class's, the master, and a replica of it. A failover (as an operator or a
        // managed service makes one: REPLICAOF NO ONE on the replica, then REPLICAOF on the old master) leaves the
        // driver's connection on the old master, now a replica: it refuses the release (READONLY), having run nothing.
        using var replica = await StartReplicaAsync();
        using var drivers = new RedisTestDrivers($"{_server.EndPoint},{replica.EndPoint}");
        var lease = TimeSpan.FromMinutes(10);
        var driver = drivers.Create(TimeProvider.System, configure: options => options.OperationTimeout = TimeSpan.FromSeconds(30));
        var key = await SessionSteps.CreateAsync(driver, _clock);
        var held = (await SessionSteps.LoadAsync(driver, _clock, key, SessionLease.Create(lease))).Lease!;
        await FailOverAsync(replica);

        var failure = await Assert.ThrowsAsync<RedisDriverException>(() => driver.ReleaseLockAsync(key.Id, held, CancellationToken.None).AsTask());
        output.WriteLine(failure.Message);
        Assert.Contains("READONLY", failure.Message, StringComparison.Ordinal);

        // A driver that connects now finds the new master, which has the lock (replicated): it must be free long
        // before its 10 minutes.
        var waited = await WaitUntilTheLockIsFreeAsync(drivers.Create(_clock), key, lease, PromptBound, "after the release was refused");
        output.WriteLine($"The lock was free {waited.TotalMilliseconds:F0} ms after the release was refused.");
    }

    [Fact]
    public async Task CommitAsync_MasterJustDemotedByAFailover_FailsThenReachesTheNewMasterWithinSeconds()
    {
        // The client learns of a promotion by itself only every configCheckSeconds (60 s by default) without Sentinel:
        // until then it would send every write to the old master, now a replica, which refuses it (READONLY).
        using var replica = await StartReplicaAsync();
        using var drivers = new RedisTestDrivers($"{_server.EndPoint},{replica.EndPoint}");
        var logger = new FakeLogger<RedisDriver>();
        var driver = drivers.Create(TimeProvider.System, logger);
        var key = await SessionSteps.CreateAsync(driver, _clock);
        await FailOverAsync(replica);

        var failure = await Assert.ThrowsAsync<RedisDriverException>(() => SessionSteps.CommitAsync(driver, _clock, key, new() { ["a"] = [2] }));
        Assert.Contains("READONLY", failure.Message, StringComparison.Ordinal);
        var watch = Stopwatch.StartNew();
        Assert.Equal(SessionCommitStatus.Committed, await EventuallyAsync(() => SessionSteps.CommitAsync(driver, _clock, key, new() { ["a"] = [3] })));

        output.WriteLine($"Committed on the new master {watch.Elapsed.TotalMilliseconds:F0} ms after the refusal.");
        Assert.Contains(logger.Collector.GetSnapshot(), e => e.Id.Id == 306);
        Assert.Equal([3], (await SessionSteps.LoadAsync(drivers.Create(_clock), _clock, key)).Values["a"]);
    }

    /// <summary>A replica of this class's server, started, that has everything the server has.</summary>
    private async Task<RedisServer> StartReplicaAsync()
    {
        var replica = new RedisServer { ExtraArguments = ["--replicaof", "127.0.0.1", _server.Port.ToString(CultureInfo.InvariantCulture)] };
        await replica.StartAsync();
        await WaitForReplicaAsync(_server, replica);
        return replica;
    }

    /// <summary>
    /// Fails over to <paramref name="replica"/> as an operator or a managed service does, once it has everything:
    /// <c>REPLICAOF NO ONE</c> on it, then <c>REPLICAOF</c> on this class's server, whose connections stay open.
    /// </summary>
    private async Task FailOverAsync(RedisServer replica)
    {
        await WaitForReplicaAsync(_server, replica);
        await replica.ExecuteAsync("REPLICAOF", "NO", "ONE");
        await _server.ExecuteAsync("REPLICAOF", "127.0.0.1", replica.Port.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>Waits until <paramref name="replica"/> has everything <paramref name="master"/> has written.</summary>
    private static async Task WaitForReplicaAsync(RedisServer master, RedisServer replica)
    {
        static long Offset(string? info, string field) => info!.Split('\n').Select(l => l.Trim())
            .Where(l => l.StartsWith(field + ":", StringComparison.Ordinal)).Select(l => long.Parse(l[(field.Length + 1)..], CultureInfo.InvariantCulture)).FirstOrDefault(-1);
        await Eventually.HoldsAsync(
            async () =>
            {
                var target = Offset(await master.ExecuteTextAsync("INFO", "replication"), "master_repl_offset");
                var info = await replica.ExecuteTextAsync("INFO", "replication");
                return info!.Contains("master_link_status:up", StringComparison.Ordinal) && Offset(info, "master_repl_offset") >= target;
            },
            RecoveryTimeout,
            "the replica to catch up");
    }

    private async Task AssertReleaseWakesWaiterAsync(SessionKey key)
    {
        var holder = _drivers.Create(TimeProvider.System);
        var waiter = _drivers.Create(TimeProvider.System);
        var lease = (await SessionSteps.LoadAsync(holder, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Lease!;
        Assert.Equal(SessionLoadStatus.LockBusy, (await SessionSteps.LoadAsync(waiter, _clock, key, SessionLease.Create(SessionSteps.LeaseDuration))).Status);
        await _drivers.WhenSubscribedAsync(waiter, _server);

        // Woken by the release, the wait ends long before its 60 s; half of them absorbs a busy machine.
        var watch = Stopwatch.StartNew();
        var wait = waiter.WaitForReleaseAsync(key.Id, TimeSpan.FromSeconds(60), CancellationToken.None);
        await holder.ReleaseLockAsync(key.Id, lease, CancellationToken.None);
        await wait.WaitAsync(TimeSpan.FromSeconds(120));

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"The wait took {watch.Elapsed} of its 60 s.");
    }

    /// <summary>A fake clock that counts the timers made on it that are still active, and the most ever active at once.</summary>
    private sealed class TimerCountingTimeProvider(FakeTimeProvider clock) : TimeProvider
    {
        private int _active;
        private int _mostActive;

        public FakeTimeProvider Clock => clock;

        public int MostActive => Volatile.Read(ref _mostActive);

        public override long TimestampFrequency => clock.TimestampFrequency;

        public override DateTimeOffset GetUtcNow() => clock.GetUtcNow();

        public override long GetTimestamp() => clock.GetTimestamp();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var active = Interlocked.Increment(ref _active);
            int most;
            while (active > (most = Volatile.Read(ref _mostActive)) && Interlocked.CompareExchange(ref _mostActive, active, most) != most)
            {
            }

            return new CountedTimer(this, clock.CreateTimer(callback, state, dueTime, period));
        }

        private sealed class CountedTimer(TimerCountingTimeProvider owner, ITimer timer) : ITimer
        {
            private int _disposed;

            public bool Change(TimeSpan dueTime, TimeSpan period) => timer.Change(dueTime, period);

            public void Dispose()
            {
                if (Interlocked.Exchange(ref _disposed, 1) == 0)
                {
                    Interlocked.Decrement(ref owner._active);
                }

                timer.Dispose();
            }

            public ValueTask DisposeAsync()
            {
                Dispose();
                return ValueTask.CompletedTask;
            }
        }
    }

    /// <summary>
    /// Loads <paramref name="key"/> with a lease until its lock is free (a load that finds Redis still unavailable is
    /// tried again), for at most <paramref name="within"/>; returns how long that took.
    /// </summary>
    private async Task<TimeSpan> WaitUntilTheLockIsFreeAsync(RedisDriver next, SessionKey key, TimeSpan lease, TimeSpan within, string after, Action? eachTry = null)
    {
        var watch = Stopwatch.StartNew();
        SessionLoadResult? loaded = null;
        await Eventually.HoldsAsync(
            async () =>
            {
                eachTry?.Invoke();
                loaded = await SessionSteps.LoadAsync(next, _clock, key, SessionLease.Create(lease));
                return loaded.Status != SessionLoadStatus.LockBusy;
            },
            within,
            "the lock to be free " + after,
            ex => ex is RedisDriverException);
        Assert.Equal(SessionLoadStatus.Found, loaded!.Status);
        return watch.Elapsed;
    }

    /// <summary>Retries while the driver reports Redis unavailable: the client reconnects on its own heartbeat.</summary>
    private static async Task<T> EventuallyAsync<T>(Func<Task<T>> operation)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await operation();
            }
            catch (RedisDriverException) when (deadline.Elapsed < RecoveryTimeout)
            {
                await Task.Delay(50);
            }
        }
    }
}
