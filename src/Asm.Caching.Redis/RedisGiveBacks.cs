using StackExchange.Redis;

namespace Asm.Caching.Drivers.Redis;

/// <summary>
/// The lock releases (give-backs) of one connection whose caller was told they failed, and that no answer yet says
/// ran: each is sent again until one does, for at most its lease's duration (after which the lease has ended anyway).
/// One set per connection, drained by one loop on one timer of the driver's <see cref="TimeProvider"/>, however many
/// requests failed: during a long outage they cost a list entry each, not a loop and a timer each.
/// </summary>
/// <remarks>
/// A give-back is sent again at once when Redis refused it having run nothing and may run it now (<c>NOSCRIPT</c>: a
/// node that lost its script cache, after a restart, <c>SCRIPT FLUSH</c> or a failover, then with the script's text;
/// <c>TRYAGAIN</c>: a node whose slot is migrating, then without its second key) or when the client timed it out (its
/// outcome unknown); every <see cref="Interval"/> while its connection fails (not sent, Redis being down, or its
/// connection dropped before the answer) or Redis refuses it for now (see <see cref="RedisConnection"/>'s
/// <c>RefusedForNow</c>). While the connection fails, a round sends the due give-backs only until one fails so, and the
/// rest wait for the next round: an outage costs one send per interval, and Redis coming back frees every lock within
/// about one interval. A give-back that ran and is sent again finds its token gone and does nothing: its token is the
/// lease's, so it can never free a lock granted to someone else.
/// </remarks>
internal sealed class RedisGiveBacks : IDisposable
{
    /// <summary>How often a give-back whose connection fails, or that Redis refuses for now, is sent again.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private readonly TimeProvider _timeProvider;
    private readonly Func<Exception, bool> _refusedForNow;
    private readonly Action<IConnectionMultiplexer> _onReplica;
    private readonly Lock _gate = new();
    private readonly List<GiveBack> _pending = [];
    private readonly CancellationTokenSource _disposing = new();
    private readonly CancellationToken _disposed;
    private TaskCompletionSource _answered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _draining;

    /// <param name="timeProvider">The clock of the intervals and of the leases' durations.</param>
    /// <param name="refusedForNow">Whether an answer refused a script for now, having run nothing.</param>
    /// <param name="onReplica">Told when a give-back reached a replica (<c>READONLY</c>), at most once a round.</param>
    public RedisGiveBacks(TimeProvider timeProvider, Func<Exception, bool> refusedForNow, Action<IConnectionMultiplexer> onReplica)
    {
        _timeProvider = timeProvider;
        _refusedForNow = refusedForNow;
        _onReplica = onReplica;
        _disposed = _disposing.Token;
    }

    /// <summary>How many give-backs are still to be seen through.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Whether the loop that sends them runs (at most one ever does).</summary>
    public bool Draining
    {
        get
        {
            lock (_gate)
            {
                return _draining;
            }
        }
    }

    /// <summary>
    /// Sees a give-back through: <paramref name="sent"/> is its last send (its answer still to come, or come), after
    /// which it is sent as <paramref name="script"/> with its text on <paramref name="database"/>, for at most
    /// <paramref name="period"/> from now.
    /// </summary>
    public void Add(IDatabase database, Task<RedisResult> sent, string script, RedisKey[] keys, RedisValue[] args, TimeSpan period)
    {
        var giveBack = new GiveBack(database, script, args, _timeProvider.GetTimestamp(), period) { Keys = keys };
        Watch(giveBack, sent);
        bool start;
        lock (_gate)
        {
            if (_disposed.IsCancellationRequested)
            {
                return;
            }

            _pending.Add(giveBack);
            start = !_draining;
            _draining = true;
        }

        if (start)
        {
            _ = Task.Run(DrainAsync);
        }
    }

    /// <summary>Drops every give-back (the driver is gone: their leases end by themselves) and stops the loop.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _pending.Clear();
            _disposing.Cancel();
        }
    }

    /// <summary>
    /// Each round judges the answers that came, sends again what is due, and waits for the next answer or for the
    /// next give-back to be due, whichever comes first; it ends when no give-back is left.
    /// </summary>
    private async Task DrainAsync()
    {
        while (true)
        {
            GiveBack[] round;
            Task answered;
            lock (_gate)
            {
                if (_disposed.IsCancellationRequested)
                {
                    _draining = false;
                    return;
                }

                round = [.. _pending];
                if (_answered.Task.IsCompleted)
                {
                    _answered = new(TaskCreationOptions.RunContinuationsAsynchronously);
                }

                answered = _answered.Task;
            }

            var wait = Interval;
            var unreachable = false;
            IConnectionMultiplexer? replica = null;
            foreach (var giveBack in round)
            {
                if (giveBack.Sent is { IsCompleted: false })
                {
                    continue;
                }

                if (giveBack.Sent is { } last)
                {
                    giveBack.Sent = null;
                    var outcome = Judge(giveBack, last);
                    if (outcome == Outcome.Done)
                    {
                        Remove(giveBack);
                        continue;
                    }

                    if (outcome != Outcome.Now)
                    {
                        giveBack.NotBefore = IntervalFromNow();
                        replica = outcome == Outcome.OnReplica ? giveBack.Database.Multiplexer : replica;
                    }
                }

                if (_timeProvider.GetElapsedTime(giveBack.Started) >= giveBack.Period)
                {
                    Remove(giveBack);
                    continue;
                }

                if (unreachable)
                {
                    // A send of this round found no connection: the others wait for the next round rather than fail so.
                    giveBack.NotBefore = IntervalFromNow();
                }

                var due = giveBack.NotBefore - _timeProvider.GetTimestamp();
                if (due > 0)
                {
                    var after = _timeProvider.GetElapsedTime(0, due);
                    wait = after < wait ? after : wait;
                    continue;
                }

                var sent = Send(giveBack);
                unreachable = sent is { IsFaulted: true, Exception.InnerException: RedisConnectionException };
                Watch(giveBack, sent);
            }

            if (replica is not null)
            {
                _onReplica(replica);
            }

            lock (_gate)
            {
                if (_pending.Count == 0)
                {
                    _draining = false;
                    return;
                }
            }

            // One timer at a time: the round's delay is cancelled once an answer ends the wait.
            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(_disposed);
            await Task.WhenAny(answered, Task.Delay(wait, _timeProvider, waiting.Token)).ConfigureAwait(false);
            await waiting.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Makes <paramref name="sent"/> the give-back's last send, whose answer wakes the loop.</summary>
    private void Watch(GiveBack giveBack, Task<RedisResult> sent)
    {
        giveBack.Sent = sent;
        _ = sent.ContinueWith(
            static (_, state) => ((RedisGiveBacks)state!).Answered(),
            this,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private void Answered()
    {
        lock (_gate)
        {
            _answered.TrySetResult();
        }
    }

    private long IntervalFromNow() => _timeProvider.GetTimestamp() + (long)(Interval.TotalSeconds * _timeProvider.TimestampFrequency);

    private static Task<RedisResult> Send(GiveBack giveBack)
    {
        try
        {
            return giveBack.Database.ScriptEvaluateAsync(giveBack.Script, giveBack.Keys, giveBack.Args);
        }
        catch (Exception ex)
        {
            return Task.FromException<RedisResult>(ex);
        }
    }

    /// <summary>What the answer to a give-back's last send says to do next.</summary>
    private Outcome Judge(GiveBack giveBack, Task<RedisResult> answered)
    {
        if (answered.IsCompletedSuccessfully)
        {
            return Outcome.Done;
        }

        switch (answered.Exception?.InnerException)
        {
            case RedisServerException ex when ex.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal):
                giveBack.Keys = [giveBack.Keys[0]];
                return Outcome.Now;
            case RedisServerException ex when ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal):
                return Outcome.Now;
            case RedisServerException ex when ex.Message.StartsWith("READONLY", StringComparison.Ordinal):
                return Outcome.OnReplica;
            case Exception ex when ex is RedisConnectionException || _refusedForNow(ex):
                return Outcome.Later;
            case TimeoutException:
                // Timed out by the client: sent, its outcome unknown; it may still run, or have been refused.
                return Outcome.Now;
            default:
                // Answered otherwise, or the driver is gone: the lease then ends by itself.
                return Outcome.Done;
        }
    }

    private void Remove(GiveBack giveBack)
    {
        lock (_gate)
        {
            _pending.Remove(giveBack);
        }
    }

    private enum Outcome
    {
        /// <summary>It ran, or can never: seen through.</summary>
        Done,

        /// <summary>Sent again at once.</summary>
        Now,

        /// <summary>Sent again after an interval.</summary>
        Later,

        /// <summary>Sent again after an interval; the node is a replica.</summary>
        OnReplica,
    }

    private sealed class GiveBack(IDatabase database, string script, RedisValue[] args, long started, TimeSpan period)
    {
        public IDatabase Database { get; } = database;

        public string Script { get; } = script;

        public RedisValue[] Args { get; } = args;

        /// <summary>When it was added (a <see cref="TimeProvider"/> timestamp).</summary>
        public long Started { get; } = started;

        /// <summary>For how long after <see cref="Started"/> it is sent again: its lease's duration.</summary>
        public TimeSpan Period { get; } = period;

        /// <summary>Its keys: the session's hash and its waiting line, or the hash alone after a <c>TRYAGAIN</c>.</summary>
        public required RedisKey[] Keys { get; set; }

        /// <summary>Its last send, until its answer is judged.</summary>
        public Task<RedisResult>? Sent { get; set; }

        /// <summary>When it may be sent again (a <see cref="TimeProvider"/> timestamp).</summary>
        public long NotBefore { get; set; }
    }
}
