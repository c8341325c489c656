using System.Collections.Concurrent;

namespace Asm.Caching.Drivers.Redis;

/// <summary>
/// The sessions whose lock a request outside this process's line waited for lately: those whose release was published
/// (a release publishes only when a refused load marked the lock), seen on the driver's own subscription. Their
/// releases pass the lock's turn on when they answer, not when they are sent: a load queued right behind the release
/// would always win the lock over the woken waiter of the other process, which would then be served only once this
/// process's line is empty. On the answer, the two race as they always have.
/// </summary>
/// <remarks>
/// Each publication counts for <see cref="Window"/>; a waiter that goes on waiting is refused again, marks the lock
/// again, and so is published again by the next release. The table is pruned of entries past their window whenever it
/// holds more than <see cref="PruneAbove"/>.
/// </remarks>
internal sealed class ContendedSessions(TimeProvider timeProvider)
{
    /// <summary>How long after a publication of its release a session counts as waited for from elsewhere.</summary>
    internal static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    internal const int PruneAbove = 1024;

    private readonly ConcurrentDictionary<string, long> _published = new(StringComparer.Ordinal);

    /// <summary>How many sessions are remembered (for tests).</summary>
    internal int Count => _published.Count;

    /// <summary>The release of <paramref name="sessionId"/> was published.</summary>
    public void Published(string sessionId)
    {
        _published[sessionId] = timeProvider.GetTimestamp();
        if (_published.Count > PruneAbove)
        {
            foreach (var (id, at) in _published)
            {
                if (timeProvider.GetElapsedTime(at) > Window)
                {
                    _published.TryRemove(new KeyValuePair<string, long>(id, at));
                }
            }
        }
    }

    /// <summary>Whether a release of <paramref name="sessionId"/> was published within <see cref="Window"/>.</summary>
    public bool IsContended(string sessionId)
    {
        if (!_published.TryGetValue(sessionId, out var at))
        {
            return false;
        }

        if (timeProvider.GetElapsedTime(at) <= Window)
        {
            return true;
        }

        _published.TryRemove(new KeyValuePair<string, long>(sessionId, at));
        return false;
    }
}
