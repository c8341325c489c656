using System.Collections.Concurrent;

namespace Asm.Caching.Locking;

/// <summary>
/// Wakes requests that wait for a session lock when it is released, one waiter per release, so that a hand-off
/// costs one retry rather than a stampede. Waits are bounded: a waiter whose wake-up is lost (another process held
/// the lock, a message was dropped) retries after its own <c>maxWait</c>.
/// </summary>
internal sealed class LockReleaseSignals(TimeProvider timeProvider)
{
    private readonly ConcurrentDictionary<string, ConcurrentQueue<TaskCompletionSource>> _waiters = new(StringComparer.Ordinal);

    public async Task WaitAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var queue = _waiters.GetOrAdd(sessionId, static _ => new ConcurrentQueue<TaskCompletionSource>());
        queue.Enqueue(waiter);
        try
        {
            await waiter.Task.WaitAsync(maxWait, timeProvider, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A bounded wait: the caller retries.
        }
        finally
        {
            // A waiter that leaves without being woken is marked, so that Signal skips it.
            waiter.TrySetCanceled(CancellationToken.None);

            if (queue.IsEmpty)
            {
                _waiters.TryRemove(new KeyValuePair<string, ConcurrentQueue<TaskCompletionSource>>(sessionId, queue));
            }
        }
    }

    /// <summary>Wakes the longest-waiting live waiter of <paramref name="sessionId"/>, if any.</summary>
    public void Signal(string sessionId)
    {
        if (!_waiters.TryGetValue(sessionId, out var queue))
        {
            return;
        }

        while (queue.TryDequeue(out var waiter))
        {
            if (waiter.TrySetResult())
            {
                return;
            }
        }
    }
}
