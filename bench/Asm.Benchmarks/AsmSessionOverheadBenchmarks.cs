using Asm.Caching.Sessions;
using BenchmarkDotNet.Attributes;

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

    /// <summary>A lease request: 16 random bytes as hex (once per Exclusive load).</summary>
    [Benchmark]
    public SessionLease CreateLease() => SessionLease.Create(Lease);

    /// <summary>The renewal timer started when a lease is granted and disposed at commit (once per Exclusive request).</summary>
    [Benchmark]
    public void RenewalTimer()
    {
        using var timer = TimeProvider.System.CreateTimer(static _ => { }, null, Lease / 3, Lease / 3);
    }

    /// <summary>The I/O timeout around one storage call: a linked source with CancelAfter (twice per writing request).</summary>
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
