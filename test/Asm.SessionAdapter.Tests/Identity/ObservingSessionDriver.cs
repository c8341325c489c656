using Asm.Caching.Sessions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Asm.SessionAdapter.Tests.Identity;

/// <summary>
/// Sits between Asm and the app's real driver, so a test can order concurrent requests by what storage told them
/// (which requests found the lock busy) and can damage stored values on their way back, as tampering at rest would.
/// Everything else passes through unchanged.
/// </summary>
internal sealed class ObservingSessionDriver : ISessionDriver
{
    private readonly Lock _gate = new();
    private readonly HashSet<string> _busyLeases = new(StringComparer.Ordinal);
    private readonly List<(int Requests, TaskCompletionSource Reached)> _busyWaiters = [];
    private ISessionDriver? _inner;

    private ISessionDriver Inner => _inner ?? throw new InvalidOperationException("The app has not resolved its driver yet.");

    /// <summary>The id of a session whose stored values come back with their last byte flipped.</summary>
    public string? TamperedSessionId { get; set; }

    /// <summary>Puts an observing driver in front of the driver <paramref name="services"/> registered last.</summary>
    public static ObservingSessionDriver Wrap(IServiceCollection services)
    {
        var original = services.Last(d => d.ServiceType == typeof(ISessionDriver));
        var observer = new ObservingSessionDriver();
        services.Replace(ServiceDescriptor.Singleton<ISessionDriver>(sp =>
        {
            observer._inner = original.ImplementationFactory?.Invoke(sp) as ISessionDriver
                ?? original.ImplementationInstance as ISessionDriver
                ?? (ISessionDriver)ActivatorUtilities.CreateInstance(sp, original.ImplementationType!);
            return observer;
        }));
        return observer;
    }

    /// <summary>Completes once <paramref name="requests"/> different lock requests have been told the lock is busy.</summary>
    public Task WhenLockBusy(int requests)
    {
        lock (_gate)
        {
            if (_busyLeases.Count >= requests)
            {
                return Task.CompletedTask;
            }

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _busyWaiters.Add((requests, reached));
            return reached.Task;
        }
    }

    public async ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken)
    {
        var result = await Inner.LoadAsync(request, cancellationToken);
        if (result.Status == SessionLoadStatus.LockBusy && request.Lease is { } lease)
        {
            NoteBusy(lease.Token);
        }

        if (result.Status is SessionLoadStatus.Found or SessionLoadStatus.Zombie && request.Key.Id == TamperedSessionId)
        {
            return new SessionLoadResult
            {
                Status = result.Status,
                Values = result.Values.ToDictionary(v => v.Key, v => Flipped(v.Value), StringComparer.Ordinal),
                CurrentSecret = result.CurrentSecret,
                CreatedAt = result.CreatedAt,
                Profiles = result.Profiles,
                Lease = result.Lease,
            };
        }

        return result;
    }

    public ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken) =>
        Inner.CommitAsync(request, cancellationToken);

    public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        Inner.RenewLockAsync(sessionId, lease, now, cancellationToken);

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) =>
        Inner.ReleaseLockAsync(sessionId, lease, cancellationToken);

    public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) =>
        Inner.RegenerateAsync(request, cancellationToken);

    public ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) =>
        Inner.DestroyAsync(sessionId, now, tombstoneExpiresAt, cancellationToken);

    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
        Inner.WaitForReleaseAsync(sessionId, maxWait, cancellationToken);

    private void NoteBusy(string leaseToken)
    {
        List<TaskCompletionSource> reached;
        lock (_gate)
        {
            if (!_busyLeases.Add(leaseToken))
            {
                return;
            }

            reached = [.. _busyWaiters.Where(w => w.Requests <= _busyLeases.Count).Select(w => w.Reached)];
            _busyWaiters.RemoveAll(w => w.Requests <= _busyLeases.Count);
        }

        foreach (var waiter in reached)
        {
            waiter.TrySetResult();
        }
    }

    private static byte[] Flipped(byte[] value)
    {
        var copy = value.ToArray();
        if (copy.Length > 0)
        {
            copy[^1] ^= 0xFF;
        }

        return copy;
    }
}
