namespace Asm.SessionAdapter.Tests.Locking;

public sealed class LocalLockQueueTests
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(1);

    [Fact]
    public async Task EnterAsync_ThreeHundredContendedSessionsWhoseWaitersTimeOut_LeaveNoEntries()
    {
        var queue = new LocalLockQueue(TimeProvider.System);
        var holders = new List<LocalLockQueue.Turn>();
        for (var i = 0; i < 300; i++)
        {
            holders.Add(Assert.NotNull(await queue.EnterAsync($"session-{i}", Long, CancellationToken.None)));
        }

        var waiters = await Task.WhenAll(Enumerable.Range(0, 300).SelectMany(i => new[]
        {
            queue.EnterAsync($"session-{i}", TimeSpan.FromMilliseconds(20), CancellationToken.None).AsTask(),
            queue.EnterAsync($"session-{i}", TimeSpan.FromMilliseconds(30), CancellationToken.None).AsTask(),
        }));
        Assert.All(waiters, Assert.Null);
        Assert.Equal(300, queue.SessionCount);
        holders.ForEach(h => h.Leave());

        Assert.Equal(0, queue.SessionCount);
    }

    [Fact]
    public async Task Leave_ThreeWaiters_HandsTheTurnInTheOrderTheyCame()
    {
        var queue = new LocalLockQueue(TimeProvider.System);
        var first = Assert.NotNull(await queue.EnterAsync("a", Long, CancellationToken.None));
        var waiting = Enumerable.Range(0, 3).Select(_ => queue.EnterAsync("a", Long, CancellationToken.None).AsTask()).ToList();

        first.Leave();
        var second = Assert.NotNull(await waiting[0].WaitAsync(Long));
        Assert.False(waiting[1].IsCompleted);
        second.Leave();
        second.Leave();
        var third = Assert.NotNull(await waiting[1].WaitAsync(Long));
        Assert.False(waiting[2].IsCompleted);
        third.Leave();
        Assert.NotNull(await waiting[2].WaitAsync(Long)).Leave();

        Assert.Equal(0, queue.SessionCount);
        Assert.True(first is { Queued: false } && second.Queued);
    }

    [Fact]
    public async Task EnterAsync_CancelledWaiter_LeavesTheQueueAndTheNextGetsTheTurn()
    {
        var queue = new LocalLockQueue(TimeProvider.System);
        using var cancel = new CancellationTokenSource();
        var holder = Assert.NotNull(await queue.EnterAsync("a", Long, CancellationToken.None));
        var cancelled = queue.EnterAsync("a", Long, cancel.Token).AsTask();
        var next = queue.EnterAsync("a", Long, CancellationToken.None).AsTask();

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        holder.Leave();
        Assert.NotNull(await next.WaitAsync(Long)).Leave();

        Assert.Equal(0, queue.SessionCount);
    }

    [Fact]
    public async Task EnterAsync_HolderWhoseLeaseRanOut_IsTakenOverByTheFirstWaiterOnly()
    {
        var queue = new LocalLockQueue(TimeProvider.System);
        var holder = Assert.NotNull(await queue.EnterAsync("a", Long, CancellationToken.None));
        holder.Extend(DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(100));
        var first = queue.EnterAsync("a", Long, CancellationToken.None).AsTask();
        var second = queue.EnterAsync("a", Long, CancellationToken.None).AsTask();

        var takenOver = Assert.NotNull(await first.WaitAsync(Long));
        holder.Leave();

        // The stalled holder's late leave gives nothing away: the second still waits for the first.
        Assert.False(second.IsCompleted);
        takenOver.Leave();
        Assert.NotNull(await second.WaitAsync(Long)).Leave();
        Assert.Equal(0, queue.SessionCount);
    }

    [Fact]
    public async Task Turn_GivenUpAndItsLineReusedByAnotherSession_ChangesNothingThere()
    {
        var queue = new LocalLockQueue(TimeProvider.System);
        var stale = Assert.NotNull(await queue.EnterAsync("a", Long, CancellationToken.None));
        stale.Leave();
        var current = Assert.NotNull(await queue.EnterAsync("b", Long, CancellationToken.None));
        Assert.Same(stale.Line, current.Line);

        stale.Presented("a.key");
        stale.Extend(DateTimeOffset.UtcNow - TimeSpan.FromMinutes(1));
        stale.Leave();

        Assert.Equal(1, queue.SessionCount);
        Assert.Equal(TimeSpan.MaxValue, current.Line.Remaining(TimeProvider.System));
        Assert.Null(current.Line.HolderKey);
        current.Leave();
        Assert.Equal(0, queue.SessionCount);
    }

    [Fact]
    public async Task EnterAsync_TurnTakenAtOnce_AllocatesNothingOnceALineIsSpare()
    {
        // Nothing here waits, so the test runs on one thread from start to end and counts that thread's allocations.
        var queue = new LocalLockQueue(TimeProvider.System);
        var expiresAt = DateTimeOffset.UtcNow + Long;
        Assert.NotNull(await queue.EnterAsync("a", Long, CancellationToken.None)).Leave();

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            var turn = Assert.NotNull(await queue.EnterAsync("a", Long, CancellationToken.None));
            turn.Presented("a.key");
            turn.Extend(expiresAt);
            turn.Leave();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public async Task WhenQueued_CompletesOnceThatManyRequestsWaited()
    {
        var queue = new LocalLockQueue(TimeProvider.System);
        var holder = Assert.NotNull(await queue.EnterAsync("a", Long, CancellationToken.None));
        var two = queue.WhenQueued(2);
        var waiter = queue.EnterAsync("a", Long, CancellationToken.None).AsTask();
        Assert.False(two.IsCompleted);

        var other = queue.EnterAsync("a", Long, CancellationToken.None).AsTask();
        await two.WaitAsync(Long);
        holder.Leave();
        Assert.NotNull(await waiter.WaitAsync(Long)).Leave();
        Assert.NotNull(await other.WaitAsync(Long)).Leave();
        Assert.Equal(0, queue.SessionCount);
    }
}
