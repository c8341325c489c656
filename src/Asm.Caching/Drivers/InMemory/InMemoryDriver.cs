using System.Collections.Concurrent;
using Asm.Caching.Caching;
using Asm.Caching.Locking;
using Asm.Caching.Records;
using Asm.Caching.Sessions;
using Microsoft.Extensions.Options;

namespace Asm.Caching.Drivers.InMemory;

/// <summary>
/// Keeps sessions and cache entries in this process. Thread-safe; expired entries are dropped when they are met and
/// by the sweeper, so the store never grows past the live entries. Session values and cache entries go in and come out
/// as copies, as they would through any other driver: a caller that changes an array it wrote or read changes nothing
/// stored. At most <see cref="InMemoryDriverOptions.SizeLimit"/> records are kept: past it new ones are refused, never
/// live ones evicted.
/// </summary>
internal sealed class InMemoryDriver(TimeProvider timeProvider, IOptions<InMemoryDriverOptions>? options = null)
    : ISessionDriver, ISessionTransferDriver, ISessionListingDriver, ISessionTrackingDriver, ICacheDriver, ISweepableDriver
{
    /// <summary>When the store is full, expired records are swept to make room at most this often.</summary>
    private static readonly TimeSpan FullSweepInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, HashSet<string>> _users = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _endChecks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SessionRecord> _sessions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CacheEntry> _entries = new(StringComparer.Ordinal);
    private readonly LockReleaseSignals _signals = new(timeProvider);
    private readonly int _sizeLimit = (options?.Value ?? new InMemoryDriverOptions()).SizeLimit;
    private long _count;
    private long _lastFullSweep = long.MinValue;

    /// <summary>The records kept (sessions and cache entries).</summary>
    internal int Count => (int)Interlocked.Read(ref _count);

    public ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_sessions.TryGetValue(request.Key.Id, out var record))
        {
            return ValueTask.FromResult(SessionLoadResult.Of(SessionLoadStatus.Unknown));
        }

        lock (record)
        {
            return ValueTask.FromResult(record.Load(request, copyValues: true));
        }
    }

    public ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        SessionValueName.ValidateAll(request);
        SessionCommitStatus status;
        if (request.CreateWithSecret is not null)
        {
            Reserve("session");
            status = _sessions.TryAdd(request.SessionId, SessionRecord.Create(request, copyValues: true))
                ? SessionCommitStatus.Committed
                : Unreserve(SessionCommitStatus.NotFound);
        }
        else if (_sessions.TryGetValue(request.SessionId, out var record))
        {
            lock (record)
            {
                status = record.Commit(request, copyValues: true);
            }
        }
        else
        {
            status = SessionCommitStatus.NotFound;
        }

        if (request.ReleaseLock && status == SessionCommitStatus.Committed)
        {
            _signals.Signal(request.SessionId);
        }

        return ValueTask.FromResult(status);
    }

    public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_sessions.TryGetValue(sessionId, out var record))
        {
            return ValueTask.FromResult(false);
        }

        lock (record)
        {
            return ValueTask.FromResult(record.Renew(lease, SessionRecord.Ms(now)));
        }
    }

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_sessions.TryGetValue(sessionId, out var record))
        {
            bool released;
            lock (record)
            {
                released = record.Release(lease);
            }

            if (released)
            {
                _signals.Signal(sessionId);
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_sessions.TryGetValue(request.Key.Id, out var record))
        {
            return ValueTask.FromResult(SessionCommitStatus.NotFound);
        }

        lock (record)
        {
            return ValueTask.FromResult(record.Regenerate(request));
        }
    }

    public ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var purgeAt = SessionRecord.Ms(tombstoneExpiresAt);

        // A tombstone is never refused (a destroy must not fail), but it counts, once: only the caller whose tombstone
        // was added counts it (a factory passed to GetOrAdd may run for several racing callers).
        var tombstone = SessionRecord.Tombstone(purgeAt);
        var record = _sessions.GetOrAdd(sessionId, tombstone);
        if (ReferenceEquals(record, tombstone))
        {
            Interlocked.Increment(ref _count);
        }

        lock (record)
        {
            // A request holding the old record object sees the tombstone too: nothing it commits survives.
            record.Destroy(purgeAt);
        }

        if (purgeAt <= SessionRecord.Ms(now) && _sessions.TryRemove(new KeyValuePair<string, SessionRecord>(sessionId, record)))
        {
            // A tombstone that ends at once is no record, as the sweeper would find it.
            Interlocked.Decrement(ref _count);
        }

        _signals.Signal(sessionId);
        return ValueTask.CompletedTask;
    }

    public ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_sessions.TryGetValue(sessionId, out var record))
        {
            return ValueTask.FromResult(SessionExportResult.Of(SessionLoadStatus.Unknown));
        }

        lock (record)
        {
            return ValueTask.FromResult(record.Export(sessionId, lease, SessionRecord.Ms(now)));
        }
    }

    public ValueTask<bool> ImportAsync(SessionSnapshot snapshot, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        cancellationToken.ThrowIfCancellationRequested();
        Reserve("session");
        return ValueTask.FromResult(_sessions.TryAdd(snapshot.SessionId, SessionRecord.Import(snapshot)) || Unreserve(false));
    }

    public ValueTask<SessionBindResult> BindUserAsync(SessionRegenerateRequest request, string userId, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_sessions.TryGetValue(request.Key.Id, out var record))
        {
            return ValueTask.FromResult(new SessionBindResult(SessionCommitStatus.NotFound, null));
        }

        lock (record)
        {
            return ValueTask.FromResult(record.Bind(request, userId));
        }
    }

    public ValueTask<StoredSessionInfo?> GetInfoAsync(string sessionId, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_sessions.TryGetValue(sessionId, out var record))
        {
            return ValueTask.FromResult<StoredSessionInfo?>(null);
        }

        lock (record)
        {
            return ValueTask.FromResult<StoredSessionInfo?>(record.Info(sessionId));
        }
    }

    public ValueTask<bool> ExpireSessionAsync(string sessionId, DateTimeOffset idleExpiresAt, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_sessions.TryGetValue(sessionId, out var record))
        {
            return ValueTask.FromResult(false);
        }

        lock (record)
        {
            return ValueTask.FromResult(record.Expire(SessionRecord.Ms(idleExpiresAt)));
        }
    }

    public ValueTask AddToUserIndexAsync(string userId, string sessionId, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        while (true)
        {
            var index = _users.GetOrAdd(userId, _ => new HashSet<string>(StringComparer.Ordinal));
            lock (index)
            {
                // An index emptied (and removed) meanwhile is not written to: take the current one.
                if (_users.TryGetValue(userId, out var current) && ReferenceEquals(current, index))
                {
                    index.Add(sessionId);
                    return ValueTask.CompletedTask;
                }
            }
        }
    }

    public ValueTask<IReadOnlyList<string>> GetUserIndexAsync(string userId, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_users.TryGetValue(userId, out var index))
        {
            return ValueTask.FromResult<IReadOnlyList<string>>([]);
        }

        lock (index)
        {
            return ValueTask.FromResult<IReadOnlyList<string>>([.. index]);
        }
    }

    public ValueTask RemoveFromUserIndexAsync(string userId, IReadOnlyCollection<string> sessionIds, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_users.TryGetValue(userId, out var index))
        {
            lock (index)
            {
                index.ExceptWith(sessionIds);
                if (index.Count == 0)
                {
                    _users.TryRemove(new KeyValuePair<string, HashSet<string>>(userId, index));
                }
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask ScheduleEndCheckAsync(string sessionId, DateTimeOffset at, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _endChecks[sessionId] = at;
        return ValueTask.CompletedTask;
    }

    public ValueTask<bool> ClaimEndCheckAsync(string sessionId, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(_endChecks.TryRemove(sessionId, out _));
    }

    public ValueTask<IReadOnlyList<string>> ClaimDueEndChecksAsync(DateTimeOffset now, int max, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        List<string> claimed = [];
        foreach (var (id, at) in _endChecks)
        {
            if (claimed.Count >= max)
            {
                break;
            }

            if (at <= now && _endChecks.TryRemove(new KeyValuePair<string, DateTimeOffset>(id, at)))
            {
                claimed.Add(id);
            }
        }

        return ValueTask.FromResult<IReadOnlyList<string>>(claimed);
    }

    public IAsyncEnumerable<string> ListSessionIdsAsync(CancellationToken cancellationToken) => _sessions.Keys.ToAsyncEnumerable();

    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
        _signals.WaitAsync(sessionId, maxWait, cancellationToken);

    public ValueTask<byte[]?> GetAsync(string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Slide(key, now)?.Value.ToArray());
    }

    public ValueTask SetAsync(string key, byte[] value, CacheEntryExpiration expiration, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var entry = new CacheEntry(value.ToArray(), expiration.AbsoluteExpiresAt, expiration.Sliding, expiration.ExpiresAt);
        while (true)
        {
            if (_entries.TryGetValue(key, out var old))
            {
                if (_entries.TryUpdate(key, entry, old))
                {
                    return ValueTask.CompletedTask;
                }

                continue;
            }

            Reserve("cache entry");
            if (_entries.TryAdd(key, entry))
            {
                return ValueTask.CompletedTask;
            }

            Unreserve(0);
        }
    }

    public ValueTask RefreshAsync(string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Slide(key, now);
        return ValueTask.CompletedTask;
    }

    public ValueTask RemoveAsync(string key, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_entries.TryRemove(key, out _))
        {
            Interlocked.Decrement(ref _count);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<int> SweepAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Sweep(now, cancellationToken));

    private int Sweep(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var removed = 0;
        var ms = SessionRecord.Ms(now);
        foreach (var (id, record) in _sessions)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (record.PurgeAt <= ms && _sessions.TryRemove(new KeyValuePair<string, SessionRecord>(id, record)))
            {
                removed++;
            }
        }

        foreach (var (key, entry) in _entries)
        {
            if (entry.ExpiresAt <= now && _entries.TryRemove(new KeyValuePair<string, CacheEntry>(key, entry)))
            {
                removed++;
            }
        }

        Interlocked.Add(ref _count, -removed);
        return removed;
    }

    /// <summary>
    /// Counts a record about to be added, or throws <see cref="StorageFullException"/> when the store is full even
    /// after sweeping expired records (at most once per <see cref="FullSweepInterval"/>, so a flood cannot make
    /// every request scan the store).
    /// </summary>
    private void Reserve(string what)
    {
        if (Interlocked.Increment(ref _count) <= _sizeLimit)
        {
            return;
        }

        Interlocked.Decrement(ref _count);
        if (SweepWhenFull())
        {
            if (Interlocked.Increment(ref _count) <= _sizeLimit)
            {
                return;
            }

            Interlocked.Decrement(ref _count);
        }

        throw new StorageFullException(
            $"The in-memory store is full: it keeps at most {_sizeLimit} sessions and cache entries " +
            $"(InMemoryDriverOptions.SizeLimit), so a new {what} was refused. Live records are never evicted; new ones " +
            "are accepted again once some expire.");
    }

    /// <summary>Sweeps expired records unless that was done less than <see cref="FullSweepInterval"/> ago; true if some went.</summary>
    private bool SweepWhenFull()
    {
        var last = Interlocked.Read(ref _lastFullSweep);
        var now = timeProvider.GetTimestamp();
        var due = last == long.MinValue || timeProvider.GetElapsedTime(last, now) >= FullSweepInterval;
        return due && Interlocked.CompareExchange(ref _lastFullSweep, now, last) == last
            && Sweep(timeProvider.GetUtcNow(), CancellationToken.None) > 0;
    }

    private T Unreserve<T>(T result)
    {
        Interlocked.Decrement(ref _count);
        return result;
    }

    private CacheEntry? Slide(string key, DateTimeOffset now)
    {
        if (!_entries.TryGetValue(key, out var entry))
        {
            return null;
        }

        if (entry.ExpiresAt <= now)
        {
            if (_entries.TryRemove(new KeyValuePair<string, CacheEntry>(key, entry)))
            {
                Interlocked.Decrement(ref _count);
            }

            return null;
        }

        if (entry.Sliding is not null)
        {
            var slid = entry with { ExpiresAt = CacheEntryExpiration.NextExpiry(now, entry.AbsoluteExpiresAt, entry.Sliding) };
            _entries.TryUpdate(key, slid, entry);
        }

        return entry;
    }

    private sealed record CacheEntry(byte[] Value, DateTimeOffset? AbsoluteExpiresAt, TimeSpan? Sliding, DateTimeOffset? ExpiresAt);
}
