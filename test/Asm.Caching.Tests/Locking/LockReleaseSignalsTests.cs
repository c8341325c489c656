using Asm.Caching.Locking;

namespace Asm.Caching.Tests.Locking;

public sealed class LockReleaseSignalsTests
{
    [Fact]
    public async Task WaitAsync_ThreeHundredContendedSessionsWhoseWaitersTimeOut_LeaveNoEntries()
    {
        var signals = new LockReleaseSignals(TimeProvider.System);

        await Task.WhenAll(Enumerable.Range(0, 300).SelectMany(i => new[]
        {
            signals.WaitAsync($"session-{i}", TimeSpan.FromMilliseconds(20), CancellationToken.None),
            signals.WaitAsync($"session-{i}", TimeSpan.FromMilliseconds(30), CancellationToken.None),
        }));

        Assert.Equal(0, signals.SessionCount);
    }

    [Fact]
    public async Task WaitAsync_WokenCancelledAndTimedOutWaiters_LeaveNoEntries()
    {
        var signals = new LockReleaseSignals(TimeProvider.System);
        using var cancel = new CancellationTokenSource();
        var woken = signals.WaitAsync("a", TimeSpan.FromMinutes(1), CancellationToken.None);
        var cancelled = signals.WaitAsync("b", TimeSpan.FromMinutes(1), cancel.Token);
        var timedOut = signals.WaitAsync("c", TimeSpan.FromMilliseconds(10), CancellationToken.None);
        Assert.Equal(3, signals.SessionCount);

        signals.Signal("a");
        await cancel.CancelAsync();
        await woken.WaitAsync(TimeSpan.FromSeconds(10));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        await timedOut.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, signals.SessionCount);
    }

    [Fact]
    public async Task Signal_TwoWaiters_WakesOnlyTheLongestWaiting()
    {
        var signals = new LockReleaseSignals(TimeProvider.System);
        var first = signals.WaitAsync("a", TimeSpan.FromMinutes(1), CancellationToken.None);
        var second = signals.WaitAsync("a", TimeSpan.FromMinutes(1), CancellationToken.None);

        signals.Signal("a");
        await first.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(second.IsCompleted);
        signals.Signal("a");
        await second.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, signals.SessionCount);
    }
}
