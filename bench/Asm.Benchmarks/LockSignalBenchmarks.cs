using Asm.Caching.Locking;
using BenchmarkDotNet.Attributes;

namespace Asm.Benchmarks;

/// <summary>
/// The in-process half of a lock hand-off: a request waiting for a session's lock is woken by the release signal
/// (what the in-memory and filesystem drivers do on release, and the Redis driver on the release message).
/// </summary>
[MemoryDiagnoser]
public class LockSignalBenchmarks
{
    private readonly LockReleaseSignals _signals = new(TimeProvider.System);

    [Benchmark]
    public async Task WakeOneWaiter()
    {
        var waiting = _signals.WaitAsync("session", TimeSpan.FromSeconds(5), CancellationToken.None);
        _signals.Signal("session");
        await waiting;
    }
}
