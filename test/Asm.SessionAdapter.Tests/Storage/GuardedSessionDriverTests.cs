using Asm.Caching.Sessions;
using Asm.SessionAdapter.Storage;

namespace Asm.SessionAdapter.Tests.Storage;

/// <summary>The I/O timeout of storage calls, whose source is reused from one call to the next on a thread.</summary>
public sealed class GuardedSessionDriverTests
{
    private static readonly TimeSpan IOTimeout = TimeSpan.FromMilliseconds(200);

    [Fact]
    public async Task TimeoutSourceReused_AfterACallThatArmedIt_CancelsNoLaterCall_AndStillTimesOutAHangingOne()
    {
        var guarded = new GuardedSessionDriver(new UnusedDriver(), IOTimeout);
        var seen = new List<CancellationToken>();

        // Calls that went on past their start arm the timeout; each then hands its source on to the next call of its thread.
        for (var i = 0; i < 20; i++)
        {
            await guarded.RunAsync("loading", "id", async ct =>
            {
                await Task.Yield();
                return 1;
            }, CancellationToken.None);
            await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => guarded.RunAsync("loading", "id", ct =>
            {
                lock (seen)
                {
                    seen.Add(ct);
                }

                return ValueTask.FromResult(1);
            }, CancellationToken.None).AsTask())));
        }

        // Well past every deadline the earlier calls armed, no token a finished call was given has been cancelled...
        await Task.Delay(IOTimeout * 5);
        Assert.NotEmpty(seen);
        Assert.All(seen, token => Assert.False(token.IsCancellationRequested));

        // ...and a call that hangs, on any thread, is still cut off by its own timeout.
        var hanging = Task.Run(() => guarded.RunAsync<int>("loading", "id", async ct =>
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
            return 1;
        }, CancellationToken.None).AsTask());
        var ex = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hanging.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("Timed out loading", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>A driver the test never calls: the guarded calls run operations of their own.</summary>
    private sealed class UnusedDriver : ISessionDriver
    {
        public ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
