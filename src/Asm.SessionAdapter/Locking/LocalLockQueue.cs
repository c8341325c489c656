using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Asm.Caching.Sessions;

namespace Asm.SessionAdapter;

/// <summary>
/// The requests of this process that want one session's lock, in the order they asked. Only the one holding the turn
/// asks the storage (and waits there for holders in other processes); the others wait here without a storage call, and
/// each is handed the turn when the one before it has given the lock back, so that a hand-off within the process costs
/// one load and no polling, on every driver.
/// </summary>
/// <remarks>
/// <para>
/// A turn whose holder took the lease lasts as long as the lease as its holder last knew it (<see cref="Turn.Extend"/>
/// on every renewal): if the holder stalls and its renewals stop, the first waiter takes the turn over when the lease
/// would have run out and asks the storage, which judges the lease, as a waiter in another process would.
/// </para>
/// <para>
/// A waiter leaves the queue however its wait ends (handed the turn, timed out, cancelled), and a session leaves the
/// table when its turn is given back with nobody waiting, so the table holds only sessions that a request of this
/// process holds or waits for right now.
/// </para>
/// <para>
/// A turn taken at once allocates nothing: a session's line is reused from a few spare ones once nobody holds it, and a
/// <see cref="Turn"/> is a value, the line and a number that names the turn on it (every turn the queue grants gets a new
/// one), so that a turn given up or taken over is told from the turn its line holds now.
/// </para>
/// </remarks>
internal sealed class LocalLockQueue(TimeProvider timeProvider)
{
    /// <summary>Waiters recheck the holder's lease at least this often (a renewal may have changed it).</summary>
    private static readonly TimeSpan RecheckEvery = TimeSpan.FromSeconds(1);

    /// <summary>Lines kept for reuse at most (a line is a few dozen bytes).</summary>
    private const int MaxSpareLines = 64;

    private readonly Dictionary<string, Line> _lines = new(StringComparer.Ordinal);
    private readonly Stack<Line> _spareLines = new();
    private readonly List<(int Count, TaskCompletionSource Reached)> _queuedWatchers = [];
    private int _queued;
    private long _turnsGranted;

    /// <summary>How many sessions have a turn taken (for tests).</summary>
    internal int SessionCount
    {
        get
        {
            lock (_lines)
            {
                return _lines.Count;
            }
        }
    }

    /// <summary>Completes once <paramref name="count"/> requests in all have waited in the queue (for tests).</summary>
    internal Task WhenQueued(int count)
    {
        lock (_lines)
        {
            if (_queued >= count)
            {
                return Task.CompletedTask;
            }

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _queuedWatchers.Add((count, reached));
            return reached.Task;
        }
    }

    /// <summary>
    /// Takes the turn at <paramref name="sessionId"/>'s lock, waiting up to <paramref name="maxWait"/> for the requests
    /// queued before this one. Returns <see langword="null"/> when the wait ran out; throws when it was cancelled.
    /// </summary>
    public async ValueTask<Turn?> EnterAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        Line line;
        LinkedListNode<TaskCompletionSource<Turn>> node;
        List<TaskCompletionSource>? reached;
        lock (_lines)
        {
            ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_lines, sessionId, out var exists);
            if (!exists)
            {
                slot = line = _spareLines.TryPop(out var spare) ? spare : new Line(this);
                line.SessionId = sessionId;
                return Grant(line, queued: false);
            }

            line = slot!;

            node = line.Waiters.AddLast(new TaskCompletionSource<Turn>(TaskCreationOptions.RunContinuationsAsynchronously));
            reached = NoteQueued();
        }

        reached?.ForEach(static r => r.TrySetResult());
        var started = timeProvider.GetTimestamp();
        while (true)
        {
            var slice = Min(maxWait - timeProvider.GetElapsedTime(started), RecheckEvery);
            lock (_lines)
            {
                // Only the first waiter takes over a turn whose lease ran out; the others wait for their own turn.
                slice = line.Waiters.First == node ? Min(slice, line.Remaining(timeProvider)) : slice;
            }

            try
            {
                return await node.Value.Task.WaitAsync(slice > TimeSpan.Zero ? slice : TimeSpan.Zero, timeProvider, cancellationToken)
                    .ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                lock (_lines)
                {
                    if (node.List is null)
                    {
                        // Handed the turn as the wait ended: take it.
                        return node.Value.Task.Result;
                    }

                    if (timeProvider.GetElapsedTime(started) >= maxWait)
                    {
                        line.Waiters.Remove(node);
                        return null;
                    }

                    if (line.Waiters.First == node && line.Remaining(timeProvider) <= TimeSpan.Zero)
                    {
                        // The holder's lease has run out without a renewal: ask the storage, which judges it.
                        line.Waiters.Remove(node);
                        return Grant(line, queued: true);
                    }
                }
            }
            catch (OperationCanceledException)
            {
                Turn? handed = null;
                lock (_lines)
                {
                    if (node.List is null)
                    {
                        handed = node.Value.Task.Result;
                    }
                    else
                    {
                        line.Waiters.Remove(node);
                    }
                }

                handed?.Leave();
                throw;
            }
        }
    }

    /// <summary>
    /// Whether a request of this process holds the turn at <paramref name="key"/>'s session with another key: a request
    /// presenting <paramref name="key"/> would wait behind it before the storage had judged its key.
    /// </summary>
    public bool IsHeldWithAnotherKey(SessionKey key)
    {
        lock (_lines)
        {
            return _lines.TryGetValue(key.Id, out var line) && line.HolderKey is { } holder
                && !CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes(holder.AsSpan()), MemoryMarshal.AsBytes(key.Value.AsSpan()));
        }
    }

    private List<TaskCompletionSource>? NoteQueued()
    {
        _queued++;
        if (_queuedWatchers.Count == 0)
        {
            return null;
        }

        var reached = _queuedWatchers.Where(w => w.Count <= _queued).Select(w => w.Reached).ToList();
        _queuedWatchers.RemoveAll(w => w.Count <= _queued);
        return reached;
    }

    /// <summary>Makes the next turn on <paramref name="line"/> its holder's (under the table's lock).</summary>
    private Turn Grant(Line line, bool queued)
    {
        line.HeldBy = ++_turnsGranted;
        line.HolderKey = null;
        line.HolderExpiresAtTicks = DateTimeOffset.MaxValue.UtcTicks;
        return new Turn(line, line.HeldBy, queued);
    }

    /// <summary>Hands the turn to the longest-waiting request, or frees the session when nobody waits.</summary>
    private void Leave(Turn turn)
    {
        lock (_lines)
        {
            var line = turn.Line;
            if (!line.IsHeldBy(turn.Number))
            {
                // Given up already, or taken over by a waiter after the lease ran out: no longer this turn's to give.
                return;
            }

            if (line.FirstWaiter is not { } first)
            {
                _lines.Remove(line.SessionId);
                line.HeldBy = 0;
                if (_spareLines.Count < MaxSpareLines)
                {
                    _spareLines.Push(line);
                }

                return;
            }

            // Handed under the lock, so that a waiter that finds itself off the line (its wait ending at that moment)
            // reads its turn at once; its continuation runs elsewhere (RunContinuationsAsynchronously), not in here.
            line.Waiters.RemoveFirst();
            first.Value.TrySetResult(Grant(line, queued: true));
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>
    /// One session's line: the turn that holds it, what that holder told the queue, and the requests waiting behind it.
    /// Read and written under the table's lock.
    /// </summary>
    internal sealed class Line(LocalLockQueue queue)
    {
        private LinkedList<TaskCompletionSource<Turn>>? _waiters;

        public LocalLockQueue Queue { get; } = queue;

        public string SessionId { get; set; } = "";

        /// <summary>The number of the turn that holds the line (0: none, the line is spare).</summary>
        public long HeldBy { get; set; }

        /// <summary>
        /// Whether turn <paramref name="number"/> holds the line. Number 0 never does: a spare line is held by 0, and a
        /// turn read while its field was reset to default may pair its line with 0 (the struct is not read at once).
        /// </summary>
        public bool IsHeldBy(long number) => number != 0 && HeldBy == number;

        /// <summary>The key the holder presented, once it said (see <see cref="IsHeldWithAnotherKey"/>).</summary>
        public string? HolderKey { get; set; }

        /// <summary>When the holder's lease runs out as far as it knows (<see cref="DateTimeOffset.MaxValue"/>: no lease yet).</summary>
        public long HolderExpiresAtTicks { get; set; }

        /// <summary>The requests waiting behind the holder, oldest first (made when the first one queues).</summary>
        public LinkedList<TaskCompletionSource<Turn>> Waiters => _waiters ??= [];

        /// <summary>The longest-waiting request, if any.</summary>
        public LinkedListNode<TaskCompletionSource<Turn>>? FirstWaiter => _waiters?.First;

        /// <summary>How long the holder's lease has left, as far as it knows (no lease yet: as long as it asks).</summary>
        public TimeSpan Remaining(TimeProvider time) => HolderExpiresAtTicks == DateTimeOffset.MaxValue.UtcTicks
            ? TimeSpan.MaxValue
            : new DateTimeOffset(HolderExpiresAtTicks, TimeSpan.Zero) - time.GetUtcNow();
    }

    /// <summary>
    /// One request's turn at a session's lock (the default value is no turn); <see cref="Leave"/> gives it up. Whoever
    /// calls them, and however often, the members act only while the turn still holds its line.
    /// </summary>
    internal readonly struct Turn(Line line, long number, bool queued)
    {
        internal Line Line { get; } = line;

        internal long Number { get; } = number;

        /// <summary>Whether the request waited for requests queued before it.</summary>
        public bool Queued { get; } = queued;

        /// <summary>Tells the queue the key the holder presented (see <see cref="IsHeldWithAnotherKey"/>).</summary>
        public void Presented(string key) => Update(key, null);

        /// <summary>The holder took or renewed its lease: it runs until <paramref name="expiresAt"/>, as far as it knows.</summary>
        public void Extend(DateTimeOffset expiresAt) => Update(null, expiresAt);

        public void Leave() => Line?.Queue.Leave(this);

        private void Update(string? key, DateTimeOffset? expiresAt)
        {
            if (Line is not { } line)
            {
                return;
            }

            lock (line.Queue._lines)
            {
                if (line.IsHeldBy(Number))
                {
                    line.HolderKey = key ?? line.HolderKey;
                    line.HolderExpiresAtTicks = expiresAt?.UtcTicks ?? line.HolderExpiresAtTicks;
                }
            }
        }
    }
}
