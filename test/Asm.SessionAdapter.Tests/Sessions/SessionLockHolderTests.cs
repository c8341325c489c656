using System.Diagnostics.Metrics;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Sessions;
using Asm.SessionAdapter.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.Sessions;

/// <summary>The lock holder's states (no lease, held and renewed, renewal stopped, forgotten), over the in-memory driver.</summary>
public sealed class SessionLockHolderTests : IDisposable
{
    private static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();

    [Fact]
    public async Task LeaseFromALockedLoad_IsHeldAndRenewedEveryThirdOfItsDuration_UntilForgotten()
    {
        var (time, driver, key, holder) = await StartAsync();

        var loaded = await holder.LoadLockedAsync(key, SessionLockMode.Exclusive, CancellationToken.None);
        Assert.Null(holder.Lease);
        holder.Hold(key.Id, loaded!.Lease!);

        Assert.Same(loaded.Lease, holder.Lease);
        Assert.True(holder.IsRenewing);
        for (var i = 0; i < 4; i++)
        {
            time.Advance(Lease / 3);
        }

        // 40 s after a 30 s lease was granted, renewals keep it: another request is told the lock is busy.
        Assert.True(holder.IsRenewing);
        Assert.Equal(SessionLoadStatus.LockBusy, (await driver.LoadAsync(LockedLoad(key, time), CancellationToken.None)).Status);
        Assert.Same(loaded.Lease, holder.Forget());
        Assert.Null(holder.Lease);
        Assert.False(holder.IsRenewing);
        Assert.Null(holder.Forget());
    }

    [Fact]
    public async Task RenewalTimerGivenBack_RenewsTheNextHolderThatTakesIt()
    {
        var time = new FakeTimeProvider();
        var driver = new InMemoryDriver(time);
        var timers = new RenewalTimers(time);
        var (first, second) = (await CreateAsync(driver, time), await CreateAsync(driver, time));
        var firstHolder = Holder(driver, time, renewalTimers: timers);
        var secondHolder = Holder(driver, time, renewalTimers: timers);
        firstHolder.Hold(first.Id, (await firstHolder.LoadLockedAsync(first, SessionLockMode.Exclusive, CancellationToken.None))!.Lease!);
        time.Advance(Lease / 3);
        await firstHolder.ReleaseAsync();

        secondHolder.Hold(second.Id, (await secondHolder.LoadLockedAsync(second, SessionLockMode.Exclusive, CancellationToken.None))!.Lease!);
        for (var i = 0; i < 4; i++)
        {
            time.Advance(Lease / 3);
        }

        // The second lease, 40 s after it was granted for 30 s, is still held; the first session's lock is free.
        Assert.True(secondHolder.IsRenewing);
        Assert.False(firstHolder.IsRenewing);
        Assert.Equal(SessionLoadStatus.LockBusy, (await driver.LoadAsync(LockedLoad(second, time), CancellationToken.None)).Status);
        Assert.Equal(SessionLoadStatus.Found, (await driver.LoadAsync(LockedLoad(first, time), CancellationToken.None)).Status);
    }

    [Fact]
    public async Task RenewalThatStorageRefuses_StopsRenewing_ButKeepsTheLeaseForTheCommitsFenceCheck()
    {
        var (time, _, key, holder) = await StartAsync();
        var neverGranted = SessionLease.Create(Lease);

        holder.Hold(key.Id, neverGranted);
        time.Advance(Lease / 3);

        await WhenAsync(() => !holder.IsRenewing);
        Assert.Same(neverGranted, holder.Lease);
    }

    [Fact]
    public async Task Release_GivesTheLockBack_SoAnotherLoadGetsItAtOnce_AndThenHoldsNothing()
    {
        var (time, driver, key, holder) = await StartAsync();
        holder.Hold(key.Id, (await holder.LoadLockedAsync(key, SessionLockMode.Exclusive, CancellationToken.None))!.Lease!);

        await holder.ReleaseAsync();

        Assert.Null(holder.Lease);
        Assert.False(holder.IsRenewing);
        var other = await driver.LoadAsync(LockedLoad(key, time), CancellationToken.None);
        Assert.Equal(SessionLoadStatus.Found, other.Status);
        await holder.ReleaseAsync();
    }

    [Fact]
    public async Task LeaseGrantedJustBeforeTheRequestEnded_IsGivenBackWhenItWouldBeHeld_NotKeptUntilItEnds()
    {
        // A write's escalation (LockOnWrite) from a task the request did not await: its locked load is granted the lease
        // and passes the holder's check; the request's final commit then closes the hold and releases what it holds
        // (nothing yet); only then does the escalation come to hold the lease it was granted.
        var (time, driver, key, holder) = await StartAsync();
        var granted = (await holder.LoadLockedAsync(key, SessionLockMode.LockOnWrite, CancellationToken.None))!.Lease!;
        holder.Close();
        await holder.ReleaseAsync();

        Assert.False(await holder.HoldOrGiveBackAsync(key.Id, granted));

        Assert.Null(holder.Lease);
        Assert.False(holder.IsRenewing);
        Assert.Equal(SessionLoadStatus.Found, (await driver.LoadAsync(LockedLoad(key, time), CancellationToken.None)).Status);
    }

    [Theory]
    [InlineData(LockWaitFailure.ContinueReadOnly)]
    [InlineData(LockWaitFailure.Throw)]
    public async Task LockedLoad_WhileAnotherRequestHoldsTheLockPastTheWait_AnswersNullOrThrows(LockWaitFailure failure)
    {
        var driver = new InMemoryDriver(TimeProvider.System);
        var key = await CreateAsync(driver, TimeProvider.System);
        Assert.Equal(SessionLoadStatus.Found, (await driver.LoadAsync(LockedLoad(key, TimeProvider.System), CancellationToken.None)).Status);
        var holder = Holder(driver, TimeProvider.System, o =>
        {
            o.LockWaitTimeout = TimeSpan.FromMilliseconds(50);
            o.LockWaitFailure = failure;
        });

        var load = holder.LoadLockedAsync(key, SessionLockMode.Exclusive, CancellationToken.None).AsTask();

        if (failure == LockWaitFailure.ContinueReadOnly)
        {
            Assert.Null(await load.WaitAsync(TimeSpan.FromSeconds(30)));
        }
        else
        {
            await Assert.ThrowsAsync<SessionLockTimeoutException>(() => load.WaitAsync(TimeSpan.FromSeconds(30)));
        }

        Assert.Null(holder.Lease);
    }

    public void Dispose() => _metrics.Dispose();

    /// <summary>A stored session on the in-memory driver, on a fake clock, and a lock holder with no lease yet.</summary>
    private async Task<(FakeTimeProvider Time, InMemoryDriver Driver, SessionKey Key, SessionLockHolder Holder)> StartAsync()
    {
        var time = new FakeTimeProvider();
        var driver = new InMemoryDriver(time);
        return (time, driver, await CreateAsync(driver, time), Holder(driver, time));
    }

    private SessionLockHolder Holder(InMemoryDriver driver, TimeProvider time, Action<AsmSessionOptions>? configure = null, RenewalTimers? renewalTimers = null)
    {
        var options = new AsmSessionOptions { LockLease = Lease };
        configure?.Invoke(options);
        var telemetry = new SessionTelemetry(new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>()), NullLogger.Instance);
        return new SessionLockHolder(new GuardedSessionDriver(driver, options.IOTimeout), options, time, telemetry, renewalTimers: renewalTimers);
    }

    private static async Task<SessionKey> CreateAsync(InMemoryDriver driver, TimeProvider time)
    {
        var key = SessionKey.New();
        var status = await driver.CommitAsync(
            new SessionCommitRequest { SessionId = key.Id, Now = time.GetUtcNow(), IdleTimeout = Idle, CreateWithSecret = key.Secret, Changes = new Dictionary<string, byte[]?> { ["a"] = [1] } },
            CancellationToken.None);
        Assert.Equal(SessionCommitStatus.Committed, status);
        return key;
    }

    private static SessionLoadRequest LockedLoad(SessionKey key, TimeProvider time) =>
        new() { Key = key, Now = time.GetUtcNow(), IdleTimeout = Idle, Lease = SessionLease.Create(Lease) };

    private static async Task WhenAsync(Func<bool> condition)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(10, deadline.Token);
        }
    }
}
