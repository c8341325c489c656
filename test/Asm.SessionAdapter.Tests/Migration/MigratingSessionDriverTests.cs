using System.Diagnostics.Metrics;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Migration;
using Asm.Testing.Drivers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.Migration;

/// <summary>The orderings of two requests racing to move one session that HTTP tests cannot force.</summary>
public sealed class MigratingSessionDriverTests : IDisposable
{
    private static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task LoadThatMeetsThePreviousCopyJustEndedByAParallelMove_IsServedTheMovedSession(bool locking)
    {
        var previous = new InMemoryDriver(_time);
        var current = new PausingDriver(new InMemoryDriver(_time));
        var key = SessionKey.New();
        await previous.CommitAsync(
            new SessionCommitRequest { SessionId = key.Id, Now = _time.GetUtcNow(), IdleTimeout = Idle, CreateWithSecret = key.Secret, Changes = new Dictionary<string, byte[]?> { ["a"] = [1] } },
            CancellationToken.None);
        var migrating = new MigratingSessionDriver(current, previous, _time, new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>()), NullLogger.Instance, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5));

        // The slow request has been told "unknown" by the new driver, and is held before it looks at the previous one.
        var slow = migrating.LoadAsync(Request(key, locking), CancellationToken.None).AsTask();
        await current.Paused;
        var fast = await migrating.LoadAsync(Request(key, lease: false), CancellationToken.None);
        current.Resume();
        var late = await slow.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(SessionLoadStatus.Found, fast.Status);
        Assert.Equal(SessionLoadStatus.Found, late.Status);
        Assert.Equal([1], late.Values["a"]);
        Assert.Equal(SessionLoadStatus.Destroyed, (await previous.LoadAsync(Request(key, lease: false), CancellationToken.None)).Status);
    }

    [Theory]
    [InlineData(5)]
    [InlineData(480)]
    public async Task MovedSession_ItsEndCheckIsDueWhenItEnds_ItsAbsoluteExpiryIfThatComesFirst(int absoluteMinutes)
    {
        var previous = new InMemoryDriver(_time);
        var current = new InMemoryDriver(_time);
        var key = SessionKey.New();
        var absolute = _time.GetUtcNow() + TimeSpan.FromMinutes(absoluteMinutes);
        await previous.CommitAsync(
            new SessionCommitRequest { SessionId = key.Id, Now = _time.GetUtcNow(), IdleTimeout = Idle, AbsoluteExpiresAt = absolute, CreateWithSecret = key.Secret },
            CancellationToken.None);
        var migrating = new MigratingSessionDriver(current, previous, _time, new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>()), NullLogger.Instance, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5));

        Assert.Equal(SessionLoadStatus.Found, await migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None));

        var end = absolute < _time.GetUtcNow() + Idle ? absolute : _time.GetUtcNow() + Idle;
        Assert.Equal(end, (await current.GetInfoAsync(key.Id, CancellationToken.None))!.EndsAt);
        Assert.Empty(await current.ClaimDueEndChecksAsync(end - TimeSpan.FromMilliseconds(1), 10, CancellationToken.None));
        Assert.Equal([key.Id], await current.ClaimDueEndChecksAsync(end, 10, CancellationToken.None));
    }

    /// <summary>
    /// The previous driver ends its copy but the answer is lost (a Redis reply timed out, the request's token cancelled
    /// after the script was sent). Taking the new copy back would leave the session nowhere: the move stands.
    /// </summary>
    [Fact]
    public async Task MoveAsync_EndOfThePreviousCopyAppliedButItsAnswerLost_KeepsTheNewCopy()
    {
        var previous = new FailingDestroyDriver(new InMemoryDriver(_time), appliesDestroy: true);
        var current = new InMemoryDriver(_time);
        var key = await CreateAsync(previous.Inner);
        var migrating = Migrating(current, previous);

        Assert.Equal(SessionLoadStatus.Found, await migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None));

        Assert.Equal(SessionLoadStatus.Destroyed, (await previous.Inner.LoadAsync(Request(key, lease: false), CancellationToken.None)).Status);
        var served = await migrating.LoadAsync(Request(key, lease: true), CancellationToken.None);
        Assert.Equal(SessionLoadStatus.Found, served.Status);
        Assert.Equal([1], served.Values["a"]);
        Assert.NotNull(await current.GetInfoAsync(key.Id, CancellationToken.None));
    }

    /// <summary>The previous driver refuses to end its copy, which stays live there: the new copy is taken back.</summary>
    [Fact]
    public async Task MoveAsync_EndOfThePreviousCopyNotApplied_TakesTheNewCopyBack()
    {
        var previous = new FailingDestroyDriver(new InMemoryDriver(_time), appliesDestroy: false);
        var current = new InMemoryDriver(_time);
        var key = await CreateAsync(previous.Inner);
        var migrating = Migrating(current, previous);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None).AsTask());

        Assert.Equal(SessionLoadStatus.Unknown, (await current.LoadAsync(Request(key, lease: false), CancellationToken.None)).Status);
        Assert.Equal(SessionLoadStatus.Found, (await previous.Inner.LoadAsync(Request(key, lease: false), CancellationToken.None)).Status);
    }

    /// <summary>
    /// Ending the previous copy fails and so does reading it afterwards: whether it was ended cannot be told, so the new
    /// copy is kept, and the session is served from it.
    /// </summary>
    [Fact]
    public async Task MoveAsync_EndOfThePreviousCopyFailsAndItCannotBeReadThen_KeepsTheNewCopy()
    {
        var previous = new FailingDestroyDriver(new InMemoryDriver(_time), appliesDestroy: true, LoadsAfterDestroy.Fail);
        var current = new InMemoryDriver(_time);
        var key = await CreateAsync(previous.Inner);
        var migrating = Migrating(current, previous);

        Assert.Equal(SessionLoadStatus.Found, await migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None));

        var served = await current.LoadAsync(Request(key, lease: false), CancellationToken.None);
        Assert.Equal(SessionLoadStatus.Found, served.Status);
        Assert.Equal([1], served.Values["a"]);
    }

    /// <summary>
    /// Ending the previous copy fails and reading it back gets no answer until the read's own timeout: the move stands,
    /// and what is left of it (tracking the new copy) gets a timeout of its own rather than the one the read used up.
    /// </summary>
    [Fact]
    public async Task MoveAsync_EndOfThePreviousCopyFailsAndReadingItBackTimesOut_KeepsTheNewCopyTracked()
    {
        var previous = new FailingDestroyDriver(new InMemoryDriver(_time), appliesDestroy: true, LoadsAfterDestroy.Hang);
        var current = new InMemoryDriver(_time);
        var key = await CreateAsync(previous.Inner);
        var migrating = Migrating(current, previous);

        var move = migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None).AsTask();
        await previous.LoadHangs.Task.WaitAsync(TimeSpan.FromSeconds(30));
        _time.Advance(TimeSpan.FromSeconds(6));

        Assert.Equal(SessionLoadStatus.Found, await move.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(SessionLoadStatus.Found, (await current.LoadAsync(Request(key, lease: false), CancellationToken.None)).Status);
        Assert.Equal([key.Id], await current.ClaimDueEndChecksAsync(_time.GetUtcNow() + TimeSpan.FromDays(1), 10, CancellationToken.None));
    }

    /// <summary>
    /// The background mover meets a session the new driver already holds (its previous copy left live by a move that
    /// could not end it): that session's previous copy is ended, but it is not counted as moved, only the other one is.
    /// </summary>
    [Fact]
    public async Task BackgroundMover_SessionTheNewDriverAlreadyHolds_IsNotCountedAsMoved()
    {
        var previous = new InMemoryDriver(TimeProvider.System);
        var current = new InMemoryDriver(TimeProvider.System);
        var held = await CreateAsync(previous, TimeProvider.System);
        await CreateAsync(previous, TimeProvider.System);
        var lease = SessionLease.Create(TimeSpan.FromSeconds(30));
        var export = await previous.ExportAsync(held.Id, lease, TimeProvider.System.GetUtcNow(), CancellationToken.None);
        Assert.True(await current.ImportAsync(export.Snapshot!, TimeProvider.System.GetUtcNow(), CancellationToken.None));
        await previous.ReleaseLockAsync(held.Id, export.Lease!, CancellationToken.None);
        using var application = new ServiceCollection().AddSingleton(TimeProvider.System).AddLogging().BuildServiceProvider();
        await using var previousStorage = new PreviousSessionDriver(application, b =>
        {
            b.UseInMemoryDriver();
            b.Services.AddSingleton(previous);
        });
        var logs = new FakeLogCollector();
        var mover = new BackgroundSessionMover(
            current,
            previousStorage,
            Options.Create(new AsmMigrationOptions { MoveInBackground = true, SessionsPerSecond = 1_000_000 }),
            Options.Create(new AsmSessionOptions()),
            TimeProvider.System,
            new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>()),
            new FakeLogger<BackgroundSessionMover>(logs));

        await mover.StartAsync(CancellationToken.None);
        await mover.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(30));

        var pass = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 45);
        Assert.Contains("2 records listed, 1 sessions moved, 0 locked", pass.Message, StringComparison.Ordinal);
        Assert.Equal(SessionLoadStatus.Destroyed, (await previous.LoadAsync(new SessionLoadRequest { Key = held, Now = TimeProvider.System.GetUtcNow(), IdleTimeout = Idle }, CancellationToken.None)).Status);
    }

    public void Dispose() => _metrics.Dispose();

    private MigratingSessionDriver Migrating(ISessionDriver current, ISessionDriver previous) =>
        new(current, previous, _time, new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>()), NullLogger.Instance, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5));

    private async Task<SessionKey> CreateAsync(InMemoryDriver driver, TimeProvider? time = null)
    {
        var key = SessionKey.New();
        Assert.Equal(
            SessionCommitStatus.Committed,
            await driver.CommitAsync(
                new SessionCommitRequest { SessionId = key.Id, Now = (time ?? _time).GetUtcNow(), IdleTimeout = Idle, CreateWithSecret = key.Secret, Changes = new Dictionary<string, byte[]?> { ["a"] = [1] } },
                CancellationToken.None));
        return key;
    }

    private SessionLoadRequest Request(SessionKey key, bool lease) => new()
    {
        Key = key,
        Now = _time.GetUtcNow(),
        IdleTimeout = Idle,
        Lease = lease ? SessionLease.Create(TimeSpan.FromSeconds(30)) : null,
    };

    /// <summary>A driver whose first load answers, then holds its answer until the test resumes it.</summary>
    private sealed class PausingDriver(InMemoryDriver inner) : ForwardingSessionDriver<InMemoryDriver>(inner)
    {
        private readonly TaskCompletionSource _paused = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _resume = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _loads;

        public Task Paused => _paused.Task;

        public void Resume() => _resume.SetResult();

        public override async ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken)
        {
            var result = await Inner.LoadAsync(request, cancellationToken);
            if (Interlocked.Increment(ref _loads) == 1)
            {
                _paused.SetResult();
                await _resume.Task;
            }

            return result;
        }
    }

    /// <summary>What the loads of a <see cref="FailingDestroyDriver"/> do once its destroy has failed.</summary>
    private enum LoadsAfterDestroy
    {
        Answer,

        /// <summary>They fail at once (the storage went down).</summary>
        Fail,

        /// <summary>They get no answer until their token is cancelled (the storage stopped answering).</summary>
        Hang,
    }

    /// <summary>
    /// A previous driver whose destroy fails as a timed-out reply does, after ending the record or without ending it;
    /// and, if asked, whose loads fail or hang from then on.
    /// </summary>
    private sealed class FailingDestroyDriver(InMemoryDriver inner, bool appliesDestroy, LoadsAfterDestroy loads = LoadsAfterDestroy.Answer)
        : ForwardingSessionDriver<InMemoryDriver>(inner)
    {
        private volatile bool _destroyed;

        /// <summary>Completes when a load hangs.</summary>
        public TaskCompletionSource LoadHangs { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken)
        {
            switch (_destroyed ? loads : LoadsAfterDestroy.Answer)
            {
                case LoadsAfterDestroy.Fail:
                    throw new IOException("Injected: the storage is down.");
                case LoadsAfterDestroy.Hang:
                    LoadHangs.TrySetResult();
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                    break;
            }

            return await base.LoadAsync(request, cancellationToken);
        }

        public override async ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken)
        {
            if (appliesDestroy)
            {
                await Inner.DestroyAsync(sessionId, now, tombstoneExpiresAt, cancellationToken);
            }

            _destroyed = true;
            throw new OperationCanceledException("Injected: the destroy's reply timed out.");
        }
    }
}
