using Asm.Caching.Sessions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Asm.Testing.Drivers;

/// <summary>
/// Wraps the app's real driver and injects faults a real deployment meets but a test cannot summon on cue: lease
/// renewals that never arrive (a network partition, a stalled process), storage that fails or hangs, values damaged
/// at rest. Everything it does not break goes to the real driver. It also tells a test what storage told the app
/// (calls made, requests told the lock is busy), so concurrent requests can be ordered without sleeping.
/// </summary>
public sealed class ChaosSessionDriver : ISessionDriver
{
    private readonly Lock _gate = new();
    private readonly HashSet<string> _busyLeases = new(StringComparer.Ordinal);
    private readonly List<(int Requests, TaskCompletionSource Reached)> _busyWaiters = [];
    private ISessionDriver? _inner;
    private int _calls;
    private int _commits;
    private int _lockedLoads;

    private ISessionDriver Inner => _inner ?? throw new InvalidOperationException("The app has not resolved its driver yet.");

    /// <summary>
    /// The app's real driver, beneath every decorator of the app (encryption included): the stored bytes, as an
    /// attacker with read and write access to the storage reaches them.
    /// </summary>
    public ISessionDriver AtRest => Inner;

    /// <summary>Renewals are dropped: the lease runs out while its holder still works.</summary>
    public bool DropRenewals { get; set; }

    /// <summary>Every operation fails as if storage were unreachable.</summary>
    public bool Fail { get; set; }

    /// <summary>Commits fail as on a full disk, writing nothing; every other operation works.</summary>
    public bool FailCommits { get; set; }

    /// <summary>Commits hang until cancelled, each signalling <see cref="CommitHanging"/>; every other operation works.</summary>
    public bool HangCommits { get; set; }

    /// <summary>Completes once a commit hangs under <see cref="HangCommits"/>.</summary>
    public TaskCompletionSource CommitHanging { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Every operation hangs until cancelled.</summary>
    public bool Hang { get; set; }

    /// <summary>
    /// How long every load takes before it reaches storage, as over a network: an in-memory load that completes at once
    /// cannot overlap another.
    /// </summary>
    public TimeSpan LoadDelay { get; set; }

    /// <summary>Loads reach storage, but their answer is lost on the way back (a dropped connection, a timeout).</summary>
    public bool LoseLoadAnswers { get; set; }

    /// <summary>Regenerations are applied, but their answer is lost on the way back (a dropped connection, a timeout).</summary>
    public bool LoseRegenerateAnswers { get; set; }

    /// <summary>The id of a session whose stored values come back with their last byte flipped.</summary>
    public string? TamperedSessionId { get; set; }

    /// <summary>How many operations were asked of storage.</summary>
    public int Calls => Volatile.Read(ref _calls);

    /// <summary>How many commits (writes of values or profiles, creations included) were asked of storage.</summary>
    public int Commits => Volatile.Read(ref _commits);

    /// <summary>How many loads asked storage for the lock (granted or refused as busy).</summary>
    public int LockedLoads => Volatile.Read(ref _lockedLoads);

    /// <summary>How many different lock requests storage has told the lock is busy.</summary>
    public int LockBusyRequests
    {
        get
        {
            lock (_gate)
            {
                return _busyLeases.Count;
            }
        }
    }

    /// <summary>Puts a chaos driver in front of the driver <paramref name="services"/> registered last.</summary>
    public static ChaosSessionDriver Wrap(IServiceCollection services)
    {
        var original = services.Last(d => d.ServiceType == typeof(ISessionDriver));
        var chaos = new ChaosSessionDriver();
        services.Replace(ServiceDescriptor.Singleton<ISessionDriver>(sp =>
        {
            chaos._inner = original.ImplementationFactory?.Invoke(sp) as ISessionDriver
                ?? original.ImplementationInstance as ISessionDriver
                ?? (ISessionDriver)ActivatorUtilities.CreateInstance(sp, original.ImplementationType!);
            return chaos;
        }));
        return chaos;
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
        await BreakAsync(cancellationToken);
        if (LoadDelay > TimeSpan.Zero)
        {
            await Task.Delay(LoadDelay, cancellationToken);
        }

        if (request.Lease is not null)
        {
            Interlocked.Increment(ref _lockedLoads);
        }

        var result = await Inner.LoadAsync(request, cancellationToken);
        if (LoseLoadAnswers)
        {
            throw new IOException("Injected loss of the storage's answer.");
        }

        if (result.Status == SessionLoadStatus.LockBusy && request.Lease is { } lease)
        {
            NoteBusy(lease.Token);
        }

        if (result.Status is SessionLoadStatus.Found or SessionLoadStatus.Zombie && request.Key.Id == TamperedSessionId)
        {
            return result with { Values = result.Values.ToDictionary(v => v.Key, v => Flipped(v.Value), StringComparer.Ordinal) };
        }

        return result;
    }

    public async ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _commits);
        await BreakAsync(cancellationToken);
        if (HangCommits)
        {
            CommitHanging.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        if (FailCommits)
        {
            throw new IOException("Injected write failure: no space left on device.");
        }

        return await Inner.CommitAsync(request, cancellationToken);
    }

    public async ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await BreakAsync(cancellationToken);
        if (DropRenewals)
        {
            throw new TimeoutException("Injected loss of a lease renewal.");
        }

        return await Inner.RenewLockAsync(sessionId, lease, now, cancellationToken);
    }

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) =>
        ReleaseLockAsync(sessionId, lease, observer: null, cancellationToken);

    public async ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, ILockReleaseObserver? observer, CancellationToken cancellationToken)
    {
        await BreakAsync(cancellationToken);
        await Inner.ReleaseLockAsync(sessionId, lease, observer, cancellationToken);
    }

    public async ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken)
    {
        await BreakAsync(cancellationToken);
        var status = await Inner.RegenerateAsync(request, cancellationToken);
        if (LoseRegenerateAnswers)
        {
            throw new IOException("Injected loss of the storage's answer.");
        }

        return status;
    }

    public async ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken)
    {
        await BreakAsync(cancellationToken);
        await Inner.DestroyAsync(sessionId, now, tombstoneExpiresAt, cancellationToken);
    }

    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
        Inner.WaitForReleaseAsync(sessionId, maxWait, cancellationToken);

    private async Task BreakAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        if (Hang)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        if (Fail)
        {
            throw new IOException("Injected storage failure.");
        }
    }

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
