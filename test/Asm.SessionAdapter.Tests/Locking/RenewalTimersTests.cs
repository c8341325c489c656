using System.Diagnostics.Metrics;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Sessions;
using Asm.SessionAdapter.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Asm.SessionAdapter.Tests.Locking;

/// <summary>The pooled renewal timers: what a tick runs as, and what becomes of the timers when the app stops.</summary>
public sealed class RenewalTimersTests : IDisposable
{
    private static readonly AsyncLocal<string?> Request = new();
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();

    [Fact]
    public async Task Tick_RacingTheTimersHandOverToAnotherRequest_RenewsEachLeaseInItsOwnRequestsContext()
    {
        var time = new ManualTimeProvider();
        var storage = new RenewalRecorder();
        var timers = new RenewalTimers(time, capacity: 1);
        var holders = new[] { Holder(storage, time, timers), Holder(storage, time, timers) };
        var stop = new CancellationTokenSource();

        // One thread fires the (one, pooled) timer as fast as it can while another hands it from request to request.
        var ticking = Task.Factory.StartNew(
            () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    time.Fire();
                }
            },
            TaskCreationOptions.LongRunning);
        for (var i = 0; i < 1_000_000 && storage.Mismatches == 0; i++)
        {
            var holder = holders[i % 2];
            var id = i % 2 == 0 ? "first" : "second";
            RunAs(id, () => holder.Hold(id, SessionLease.Create(TimeSpan.FromSeconds(30))));
            holder.Forget();
        }

        await stop.CancelAsync();
        await ticking.WaitAsync(TimeSpan.FromSeconds(60));

        // Every renewal ran with the execution context of the request whose lease it renewed, never the one before.
        Assert.True(storage.Renewals > 0);
        Assert.Equal(0, storage.Mismatches);
    }

    [Fact]
    public void AppStopping_DisposesTheTimersItKeptForReuse_SoNoneTicksOnAfterIt()
    {
        var time = new ManualTimeProvider();
        var timers = new RenewalTimers(time);
        var holders = new[] { Holder(new RenewalRecorder(), time, timers), Holder(new RenewalRecorder(), time, timers) };
        holders[0].Hold("first", SessionLease.Create(TimeSpan.FromSeconds(30)));
        holders[1].Hold("second", SessionLease.Create(TimeSpan.FromSeconds(30)));
        holders[0].Forget();

        timers.Dispose();

        // The idle timer goes at once; the one still lent goes when its holder gives it back.
        Assert.Equal(1, time.Disposed);
        holders[1].Forget();
        Assert.Equal(2, time.Disposed);
    }

    public void Dispose() => _metrics.Dispose();

    private static void RunAs(string request, Action action)
    {
        var before = Request.Value;
        Request.Value = request;
        try
        {
            action();
        }
        finally
        {
            Request.Value = before;
        }
    }

    private SessionLockHolder Holder(ISessionDriver storage, TimeProvider time, RenewalTimers timers)
    {
        var options = new AsmSessionOptions();
        var telemetry = new SessionTelemetry(new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>()), NullLogger.Instance);
        return new SessionLockHolder(new GuardedSessionDriver(storage, options.IOTimeout), options, time, telemetry, renewalTimers: timers);
    }

    /// <summary>Storage that only renews, and counts the renewals made with another request's execution context.</summary>
    private sealed class RenewalRecorder : ISessionDriver
    {
        private int _renewals;
        private int _mismatches;

        public int Renewals => Volatile.Read(ref _renewals);

        public int Mismatches => Volatile.Read(ref _mismatches);

        public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _renewals);
            if (Request.Value != sessionId)
            {
                Interlocked.Increment(ref _mismatches);
            }

            return ValueTask.FromResult(true);
        }

        public ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) => throw new NotSupportedException();
    }

    /// <summary>A clock whose timers fire only when the test says so (every one not disposed, on the calling thread), and that counts the timers disposed.</summary>
    private sealed class ManualTimeProvider : TimeProvider
    {
        private readonly List<ManualTimer> _timers = [];
        private int _disposed;

        public int Disposed => Volatile.Read(ref _disposed);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var timer = new ManualTimer(this, callback, state);
            lock (_timers)
            {
                _timers.Add(timer);
            }

            return timer;
        }

        public void Fire()
        {
            ManualTimer[] timers;
            lock (_timers)
            {
                timers = [.. _timers];
            }

            foreach (var timer in timers)
            {
                timer.Fire();
            }
        }

        private sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
        {
            private int _disposed;

            public void Fire()
            {
                if (Volatile.Read(ref _disposed) == 0)
                {
                    callback(state);
                }
            }

            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
                if (Interlocked.Exchange(ref _disposed, 1) == 0)
                {
                    Interlocked.Increment(ref owner._disposed);
                    lock (owner._timers)
                    {
                        owner._timers.Remove(this);
                    }
                }
            }

            public ValueTask DisposeAsync()
            {
                Dispose();
                return default;
            }
        }
    }
}
