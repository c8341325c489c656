using System.Reflection;
using Asm.Caching;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Users;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.Failures;

/// <summary>
/// The background sweeps when storage times out: a client's timeout often surfaces as an
/// <see cref="OperationCanceledException"/> that is not the app stopping, and that tick must be a failed sweep like any
/// other, not the end of the sweeps for the life of the process.
/// </summary>
public sealed class SweepTimeoutTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);

    [Fact]
    public Task DriverSweep_ThatTimesOutAsACancellation_IsLoggedAsFailed_AndTheNextTickSweepsAgain() =>
        ATickThatTimesOut_IsLoggedAsFailed_AndTheNextTickSweepsAgain<DriverSweeper>(d => d.Sweeps, "Sweeping expired entries failed");

    [Fact]
    public Task EndSweep_ThatTimesOutAsACancellation_IsLoggedAsFailed_AndTheNextTickSweepsAgain() =>
        ATickThatTimesOut_IsLoggedAsFailed_AndTheNextTickSweepsAgain<SessionEndSweeper>(d => d.EndSweeps, "Looking for ended sessions failed");

    private static async Task ATickThatTimesOut_IsLoggedAsFailed_AndTheNextTickSweepsAgain<TSweeper>(
        Func<TimingOutSweepDriver, SweepCalls> calls, string failure)
        where TSweeper : BackgroundService
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logs = new FakeLogCollector();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs));
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.Configure<SweepOptions>(o => o.Interval = Interval);
        builder.Services.AddAsmSession().UseInMemoryDriver();
        var original = builder.Services.Last(d => d.ServiceType == typeof(ISessionDriver));
        var driver = new TimingOutSweepDriver();
        builder.Services.Replace(ServiceDescriptor.Singleton<ISessionDriver>(sp => driver.Wrap(original.ImplementationFactory!(sp))));
        await using var app = builder.Build();

        var sweeper = app.Services.GetServices<IHostedService>().OfType<TSweeper>().Single();
        using var stopping = new CancellationTokenSource();
        var execute = typeof(BackgroundService).GetMethod("ExecuteAsync", BindingFlags.NonPublic | BindingFlags.Instance)!;
        var running = (Task)execute.Invoke(sweeper, [stopping.Token])!;

        // The first tick's sweep throws a cancellation of its own (a storage timeout); the second tick must still sweep.
        time.Advance(Interval);
        await calls(driver).First.Task.WaitAsync(TimeSpan.FromSeconds(60));
        time.Advance(Interval);
        var second = await Task.WhenAny(calls(driver).Second.Task, running).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(second == calls(driver).Second.Task, $"{typeof(TSweeper).Name} ended {running.Status} after a sweep that timed out");
        Assert.Contains(logs.GetSnapshot(), r => r.Level == LogLevel.Warning && r.Message.StartsWith(failure, StringComparison.Ordinal));

        // The app's own stop still ends the loop quietly.
        await stopping.CancelAsync();
        await running.WaitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ContinueOnCapturedContext);
        Assert.True(running.IsCompletedSuccessfully, $"{typeof(TSweeper).Name} ended {running.Status}");
    }

    /// <summary>The first and second sweep of one kind: the first throws a cancellation that is not the app's.</summary>
    private sealed class SweepCalls
    {
        private int _count;

        public TaskCompletionSource First { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Second { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Called()
        {
            if (Interlocked.Increment(ref _count) == 1)
            {
                First.TrySetResult();
                throw new OperationCanceledException("The storage did not answer in time.");
            }

            Second.TrySetResult();
        }
    }

    /// <summary>
    /// The in-memory driver, whose first driver sweep and first claim of due end checks each throw a cancellation that
    /// no token of the app's asked for (as a storage client's timeout does); a seam with no real counterpart.
    /// </summary>
    private sealed class TimingOutSweepDriver : ISessionDriver, ISessionTrackingDriver, ISweepableDriver
    {
        private ISessionDriver _inner = null!;

        public SweepCalls Sweeps { get; } = new();

        public SweepCalls EndSweeps { get; } = new();

        private ISessionTrackingDriver Tracking => (ISessionTrackingDriver)_inner;

        public TimingOutSweepDriver Wrap(object inner)
        {
            _inner = (ISessionDriver)inner;
            return this;
        }

        public ValueTask<int> SweepAsync(DateTimeOffset now, CancellationToken cancellationToken)
        {
            Sweeps.Called();
            return ((ISweepableDriver)_inner).SweepAsync(now, cancellationToken);
        }

        public ValueTask<IReadOnlyList<string>> ClaimDueEndChecksAsync(DateTimeOffset now, int max, CancellationToken cancellationToken)
        {
            EndSweeps.Called();
            return Tracking.ClaimDueEndChecksAsync(now, max, cancellationToken);
        }

        public ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken) => _inner.LoadAsync(request, cancellationToken);

        public ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken) => _inner.CommitAsync(request, cancellationToken);

        public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
            _inner.RenewLockAsync(sessionId, lease, now, cancellationToken);

        public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) => _inner.ReleaseLockAsync(sessionId, lease, cancellationToken);

        public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
            _inner.WaitForReleaseAsync(sessionId, maxWait, cancellationToken);

        public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) => _inner.RegenerateAsync(request, cancellationToken);

        public ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) =>
            _inner.DestroyAsync(sessionId, now, tombstoneExpiresAt, cancellationToken);

        public ValueTask<SessionBindResult> BindUserAsync(SessionRegenerateRequest request, string userId, CancellationToken cancellationToken) =>
            Tracking.BindUserAsync(request, userId, cancellationToken);

        public ValueTask<StoredSessionInfo?> GetInfoAsync(string sessionId, CancellationToken cancellationToken) => Tracking.GetInfoAsync(sessionId, cancellationToken);

        public ValueTask<bool> ExpireSessionAsync(string sessionId, DateTimeOffset idleExpiresAt, CancellationToken cancellationToken) =>
            Tracking.ExpireSessionAsync(sessionId, idleExpiresAt, cancellationToken);

        public ValueTask AddToUserIndexAsync(string userId, string sessionId, CancellationToken cancellationToken) => Tracking.AddToUserIndexAsync(userId, sessionId, cancellationToken);

        public ValueTask<IReadOnlyList<string>> GetUserIndexAsync(string userId, CancellationToken cancellationToken) => Tracking.GetUserIndexAsync(userId, cancellationToken);

        public ValueTask RemoveFromUserIndexAsync(string userId, IReadOnlyCollection<string> sessionIds, CancellationToken cancellationToken) =>
            Tracking.RemoveFromUserIndexAsync(userId, sessionIds, cancellationToken);

        public ValueTask ScheduleEndCheckAsync(string sessionId, DateTimeOffset at, CancellationToken cancellationToken) =>
            Tracking.ScheduleEndCheckAsync(sessionId, at, cancellationToken);

        public ValueTask<bool> ClaimEndCheckAsync(string sessionId, CancellationToken cancellationToken) => Tracking.ClaimEndCheckAsync(sessionId, cancellationToken);
    }
}
