using System.Collections.Concurrent;

namespace Asm.Demo;

/// <summary>
/// The sessions whose lock a "Hold the lock" request holds right now, so that read-only requests can tell the page
/// that they answered while the lock was taken.
/// </summary>
internal sealed class DemoLockHolders
{
    private readonly ConcurrentDictionary<string, int> _holders = new(StringComparer.Ordinal);

    /// <summary>Marks <paramref name="sessionId"/> as held until the returned object is disposed.</summary>
    public IDisposable Hold(string sessionId)
    {
        _holders.AddOrUpdate(sessionId, 1, (_, count) => count + 1);
        return new Release(this, sessionId);
    }

    /// <summary>Whether a "Hold the lock" request of <paramref name="sessionId"/> is running.</summary>
    public bool IsHeld(string sessionId) => _holders.ContainsKey(sessionId);

    private sealed class Release(DemoLockHolders holders, string sessionId) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0 &&
                holders._holders.AddOrUpdate(sessionId, 0, (_, count) => count - 1) == 0)
            {
                holders._holders.TryRemove(KeyValuePair.Create(sessionId, 0));
            }
        }
    }
}
