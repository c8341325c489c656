using System.Collections.Concurrent;
using Asm.SessionAdapter.Sessions;

namespace Asm.SessionAdapter;

/// <summary>
/// The timers that renew lock leases, kept for reuse: a request takes one when it holds a lease and gives it back when
/// it lets go of it, so that holding a lock creates no timer per request. A timer renews the holder it is lent to, on
/// the application's <see cref="TimeProvider"/>, with the execution context the holder captured when it took the lease
/// (<see cref="SessionLockHolder.OnRenewalTick"/>): a tick reads its holder once, so it never pairs one request's lease
/// with another request's context.
/// </summary>
/// <remarks>
/// A timer given back keeps ticking (a tick with no holder does nothing), so that lending it costs no change to the
/// runtime's timer queue: a holder's first renewal comes within one period of taking the timer, not exactly one period
/// later, and then every period, which keeps the lease as surely. A renewal is judged by the lease, so a tick that
/// reaches the next holder early costs one storage call and changes nothing else. At most <c>capacity</c> timers are
/// kept; <see cref="Dispose"/> (the application stopping) disposes them, and every timer given back after it.
/// </remarks>
internal sealed class RenewalTimers(TimeProvider time, int capacity = 256) : IDisposable
{
    private readonly ConcurrentQueue<Timer> _idle = new();
    private int _idleCount;
    private volatile bool _disposed;

    /// <summary>Starts a timer that renews <paramref name="holder"/>'s lease every <paramref name="period"/>.</summary>
    public Timer Start(SessionLockHolder holder, TimeSpan period)
    {
        if (_idle.TryDequeue(out var timer))
        {
            Interlocked.Decrement(ref _idleCount);
        }
        else
        {
            timer = new Timer(this, time);
        }

        timer.Start(holder, period);
        return timer;
    }

    /// <summary>Disposes the timers kept for reuse; a timer given back from now on is disposed at once.</summary>
    public void Dispose()
    {
        _disposed = true;
        DisposeIdle();
    }

    private void Keep(Timer timer)
    {
        if (!_disposed)
        {
            if (Interlocked.Increment(ref _idleCount) <= capacity)
            {
                _idle.Enqueue(timer);
                if (_disposed)
                {
                    // Disposed while this one went in: it must not tick on.
                    DisposeIdle();
                }

                return;
            }

            Interlocked.Decrement(ref _idleCount);
        }

        timer.Dispose();
    }

    private void DisposeIdle()
    {
        while (_idle.TryDequeue(out var timer))
        {
            Interlocked.Decrement(ref _idleCount);
            timer.Dispose();
        }
    }

    /// <summary>One renewal timer, lent to one holder at a time.</summary>
    internal sealed class Timer : IDisposable
    {
        private readonly RenewalTimers _owner;
        private readonly ITimer _timer;
        private SessionLockHolder? _holder;
        private TimeSpan _period = Timeout.InfiniteTimeSpan;

        public Timer(RenewalTimers owner, TimeProvider time)
        {
            _owner = owner;

            // The timer outlives the request that made it: it captures no request's context (each tick runs in its holder's).
            var restore = !ExecutionContext.IsFlowSuppressed();
            var suppressed = restore ? ExecutionContext.SuppressFlow() : default;
            try
            {
                _timer = time.CreateTimer(static state => Volatile.Read(ref ((Timer)state!)._holder)?.OnRenewalTick(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }
            finally
            {
                if (restore)
                {
                    suppressed.Undo();
                }
            }
        }

        public void Start(SessionLockHolder holder, TimeSpan period)
        {
            Volatile.Write(ref _holder, holder);
            if (_period != period)
            {
                _period = period;
                _timer.Change(period, period);
            }
        }

        /// <summary>Stops renewing its holder, and gives the timer back for another.</summary>
        public void Stop()
        {
            Volatile.Write(ref _holder, null);
            _owner.Keep(this);
        }

        public void Dispose() => _timer.Dispose();
    }
}
