using System.Diagnostics.Metrics;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Sessions;
using Asm.SessionAdapter;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Sessions;
using Asm.SessionAdapter.Storage;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Asm.Benchmarks;

/// <summary>
/// What Asm's session does per request besides the driver call, piece by piece, to tell where an Exclusive request
/// spends the time a Lockless one does not: the lease token, the renewal timer held while the lock is, and the
/// I/O timeout every storage call runs under (the stock session also creates one per load and per commit).
/// </summary>
[MemoryDiagnoser]
public class AsmSessionOverheadBenchmarks
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly RenewalTimers _timers = new(TimeProvider.System);
    private SessionLockHolder _holder = null!;

    [GlobalSetup]
    public void Setup()
    {
        var options = new AsmSessionOptions();
        var telemetry = new SessionTelemetry(new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>()), NullLogger.Instance);
        _holder = new SessionLockHolder(new GuardedSessionDriver(new InMemoryDriver(TimeProvider.System), options.IOTimeout), options, TimeProvider.System, telemetry);
    }

    [GlobalCleanup]
    public void Cleanup() => _metrics.Dispose();

    /// <summary>A lease request: the process's random prefix and a count, as hex (once per Exclusive load).</summary>
    [Benchmark]
    public SessionLease CreateLease() => SessionLease.Create(Lease);

    /// <summary>A renewal timer taken when a lease is granted and given back at commit (once per Exclusive request).</summary>
    [Benchmark]
    public void RenewalTimer() => _timers.Start(_holder, Lease / 3).Stop();

    /// <summary>
    /// A timer of its own per request, as a lease held before the timers were reused: what <see cref="RenewalTimer"/>
    /// saves.
    /// </summary>
    [Benchmark]
    public void NewTimer()
    {
        using var timer = TimeProvider.System.CreateTimer(static _ => { }, null, Lease / 3, Lease / 3);
    }

    /// <summary>
    /// A linked source with CancelAfter: the I/O timeout of a storage call whose operation is still running when the
    /// driver returns it (one that completes at once, as the in-memory driver's, costs none of this).
    /// </summary>
    [Benchmark]
    public bool IOTimeout()
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(CancellationToken.None);
        timeout.CancelAfter(TimeSpan.FromMinutes(1));
        return timeout.IsCancellationRequested;
    }

    /// <summary>Parsing the key the cookie carries (once per request).</summary>
    [Benchmark]
    public bool ParseKey() => SessionKey.TryParse("abcdefghijklmnABCDEFGHIJKLMNOPQRSTUV", out _);
}
