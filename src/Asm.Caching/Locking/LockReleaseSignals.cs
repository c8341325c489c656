namespace Asm.Caching.Locking;

/// <summary>
/// Wakes requests that wait for a session lock when it is released, one waiter per release, so that a hand-off
/// costs one retry rather than a stampede. Waits are bounded: a waiter whose wake-up is lost (another process held
/// the lock, a message was dropped) retries after its own <c>maxWait</c>.
/// </summary>
/// <remarks>
/// A waiter leaves its session's queue however its wait ends (woken, timed out, cancelled), and a queue leaves the
/// table with its last waiter, so the table holds only sessions that someone is waiting for right now.
/// </remarks>
internal sealed class LockReleaseSignals(TimeProvider timeProvider)
{
    private readonly Dictionary<string, LinkedList<TaskCompletionSource>> _waiters = new(StringComparer.Ordinal);

    /// <summary>How many sessions have waiters (for tests).</summary>
    internal int SessionCount
    {
        get
        {
            lock (_waiters)
            {
                return _waiters.Count;
            }
        }
    }

    public async Task WaitAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        LinkedListNode<TaskCompletionSource> node;
        lock (_waiters)
        {
            if (!_waiters.TryGetValue(sessionId, out var queue))
            {
                queue = new LinkedList<TaskCompletionSource>();
                _waiters.Add(sessionId, queue);
            }

            node = queue.AddLast(waiter);
        }

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
            lock (_waiters)
            {
                // A woken waiter was already taken off by Signal.
                if (node.List is { } queue)
                {
                    queue.Remove(node);
                    if (queue.Count == 0)
                    {
                        _waiters.Remove(sessionId);
                    }
                }
            }
        }
    }

    /// <summary>Wakes the longest-waiting waiter of <paramref name="sessionId"/>, if any.</summary>
    public void Signal(string sessionId)
    {
        TaskCompletionSource? waiter;
        lock (_waiters)
        {
            if (!_waiters.TryGetValue(sessionId, out var queue) || queue.First is not { } first)
            {
                return;
            }

            waiter = first.Value;
            queue.RemoveFirst();
            if (queue.Count == 0)
            {
                _waiters.Remove(sessionId);
            }
        }

        waiter.TrySetResult();
    }
}
