using System.Collections.Concurrent;
using Asm.Caching.Sessions;

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
    public async Task Turn_OfNumberZeroOnASpareLine_ChangesNothing()
    {
        // A request keeps its turn in a plain field that ending the turn resets to default; a read racing that reset (the
        // request's end, and a renewal that found the lease lost, both end the turn) can see the line beside number 0,
        // which is what a spare line is held by. Such a turn must not free that line a second time.
        var queue = new LocalLockQueue(TimeProvider.System);
        var left = Assert.NotNull(await queue.EnterAsync("a", Long, CancellationToken.None));
        left.Leave();
        var torn = new LocalLockQueue.Turn(left.Line, 0, queued: false);

        torn.Leave();
        torn.Presented("a.key");
        var b = Assert.NotNull(await queue.EnterAsync("b", Long, CancellationToken.None));
        var c = Assert.NotNull(await queue.EnterAsync("c", Long, CancellationToken.None));
        var waiter = queue.EnterAsync("b", Long, CancellationToken.None).AsTask();

        Assert.NotSame(b.Line, c.Line);
        Assert.Null(b.Line.HolderKey);
        c.Leave();
        Assert.False(waiter.IsCompleted);
        b.Leave();
        Assert.NotNull(await waiter.WaitAsync(Long)).Leave();
        Assert.Equal(0, queue.SessionCount);
    }

    [Fact]
    public async Task EnterAsync_ManyTasksOverFewSessionsWithTimeoutsCancellationsTakeoversAndStaleTurns_NeverTwoHoldersAtOnce()
    {
        // 32 tasks take turns at 4 sessions, so that lines are freed, kept spare and reused by another session all the
        // time. Some waits time out or are cancelled (at any moment, also as the turn is handed over), some holders
        // stall past their lease and are taken over, turns are left twice, and every turn once left is used again later,
        // by another task, on a line that may hold another session by then: none of it may change the current holder's turn.
        var queue = new LocalLockQueue(TimeProvider.System);
        var keys = Enumerable.Range(0, 4).Select(_ => SessionKey.New()).ToArray();
        var inside = new int[keys.Length];
        var stale = new ConcurrentQueue<LocalLockQueue.Turn>();
        var overlaps = 0;
        var foreignKeys = 0;
        using var failed = new CancellationTokenSource();

        async Task TakeTurnsAsync(int seed)
        {
            var random = new Random(seed);
            for (var i = 0; i < 150 && !failed.IsCancellationRequested; i++)
            {
                if (stale.TryDequeue(out var old))
                {
                    // Were it still the holder, a lease run out would have it taken over, and a key of its own would
                    // tell requests with the holder's key that another key holds the session.
                    old.Presented("stale");
                    old.Extend(DateTimeOffset.UtcNow - Long);
                    old.Leave();
                }

                var s = random.Next(keys.Length);
                var kind = random.Next(10);
                LocalLockQueue.Turn turn;
                using (var cancel = CancellationTokenSource.CreateLinkedTokenSource(failed.Token))
                {
                    if (kind == 0)
                    {
                        cancel.CancelAfter(random.Next(0, 4));
                    }

                    try
                    {
                        var maxWait = kind == 1 ? TimeSpan.FromMilliseconds(random.Next(0, 4)) : Long;
                        if (await queue.EnterAsync(keys[s].Id, maxWait, cancel.Token) is not { } taken)
                        {
                            continue;
                        }

                        turn = taken;
                    }
                    catch (OperationCanceledException)
                    {
                        continue;
                    }
                }

                var key = keys[s].WithNewSecret();
                turn.Presented(key.Value);
                if (Interlocked.Increment(ref inside[s]) != 1)
                {
                    Interlocked.Increment(ref overlaps);
                    await failed.CancelAsync();
                }

                await (random.Next(4) == 0 ? Task.Delay(1) : Task.Run(() => { }));
                if (queue.IsHeldWithAnotherKey(key))
                {
                    Interlocked.Increment(ref foreignKeys);
                    await failed.CancelAsync();
                }

                Interlocked.Decrement(ref inside[s]);
                if (kind == 2)
                {
                    // Stalls past its lease: the first waiter takes the turn over (the storage would refuse this one).
                    turn.Extend(DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(2));
                    await Task.Delay(10);
                }

                turn.Leave();
                if (random.Next(3) == 0)
                {
                    turn.Leave();
                }

                stale.Enqueue(turn);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 32).Select(seed => Task.Run(() => TakeTurnsAsync(seed)))).WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(0, overlaps);
        Assert.Equal(0, foreignKeys);
        while (stale.TryDequeue(out var old))
        {
            old.Extend(DateTimeOffset.UtcNow - Long);
            old.Leave();
        }

        Assert.Equal(0, queue.SessionCount);

        // The spare lines are whole: each session entered now gets a line of its own, and the table ends empty.
        var last = new List<LocalLockQueue.Turn>();
        foreach (var key in keys)
        {
            last.Add(Assert.NotNull(await queue.EnterAsync(key.Id, Long, CancellationToken.None)));
        }

        Assert.Equal(keys.Length, last.Select(t => t.Line).Distinct().Count());
        last.ForEach(t => t.Leave());
        Assert.Equal(0, queue.SessionCount);
    }

    [Fact]
    public async Task EnterAsync_WaiterHandedTheTurnAsItsWaitIsCancelledOrTimesOut_TakesItOrPassesItOn()
    {
        // The holder leaves while its waiter's wait ends: a waiter handed the turn just then either returns it or, when
        // cancelled, passes it on; it never keeps it unseen, which would hold the session until its waiters time out.
        var queue = new LocalLockQueue(TimeProvider.System);
        for (var i = 0; i < 1000; i++)
        {
            var holder = Assert.NotNull(await queue.EnterAsync("a", Long, CancellationToken.None));
            using var cancel = new CancellationTokenSource();
            var timesOut = i % 2 == 1;
            var waiter = queue.EnterAsync("a", timesOut ? TimeSpan.FromMilliseconds(1) : Long, cancel.Token).AsTask();
            await Task.WhenAll(
                Task.Run(async () =>
                {
                    await (timesOut ? Task.Delay(1) : Task.CompletedTask);
                    holder.Leave();
                }),
                timesOut ? Task.CompletedTask : Task.Run(cancel.Cancel));
            try
            {
                (await waiter.WaitAsync(Long))?.Leave();
            }
            catch (OperationCanceledException)
            {
                // Cancelled before it was handed the turn: the turn went back.
            }

            Assert.Equal(0, queue.SessionCount);
        }
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
