using Asm.Caching.Sessions;

namespace Asm.Demo;

/// <summary>
/// The session events this app received, newest first, kept in memory (the last <see cref="Capacity"/>) for the page,
/// filed under the short hash of the session each event is about.
/// </summary>
internal sealed class DemoEventLog(TimeProvider time)
{
    /// <summary>How many events the log keeps.</summary>
    public const int Capacity = 200;

    private static readonly object RaisedKey = new();

    private readonly TimeProvider _time = time;
    private readonly LinkedList<DemoEvent> _events = new();
    private readonly Lock _gate = new();

    /// <summary>Asm's event callbacks, each filing its event in the log.</summary>
    public static AsmSessionEvents CreateEvents() => new()
    {
        OnZombieKeyAccessed = context => Add(context, DemoEvent.ZombieKey,
            "A request sent the key replaced at log-in. It was served the live session; only the browser that logged in holds the new key."),
        OnProfileChanged = context => Add(context, DemoEvent.ProfileChanged,
            $"Used from a new client, {DemoProfiles.Label(context.CurrentProfile)}, after " +
            $"{string.Join(", ", context.PreviousProfiles.Select(DemoProfiles.Label))}. Accepted: a handler may call Reject()."),
        OnInvalidSessionAccessed = context => Add(context, DemoEvent.InvalidSession,
            $"A cookie was not adopted ({context.Reason}); the request got a new session."),
        OnLockLost = context => Add(context, DemoEvent.LockLost,
            $"A {context.LockMode} request lost its lock lease; its commit was refused."),
        OnSessionEnded = context =>
        {
            // Not tied to a request: it may come from the sweeper, for any session.
            var log = context.Services.GetRequiredService<DemoEventLog>();
            var session = SessionKey.Hash(context.SessionId);
            log.Append(new DemoEvent(context.EndedAt, session, DemoEvent.SessionEnded,
                $"Session {session} of {context.UserId ?? "no user"} ended: {context.Reason}.", context.UserId));
            return Task.CompletedTask;
        },
    };

    /// <summary>
    /// The events of the session whose hash is <paramref name="session"/>, and the ends of the sessions of
    /// <paramref name="user"/>, newest first.
    /// </summary>
    public IReadOnlyList<DemoEvent> Of(string session, string? user)
    {
        lock (_gate)
        {
            return [.. _events.Where(e => e.Session == session || (user is not null && e.User == user))];
        }
    }

    /// <summary>Whether an event of <paramref name="kind"/> was raised by the current request.</summary>
    public static bool Raised(HttpContext context, string kind) =>
        context.Items[RaisedKey] is HashSet<string> raised && raised.Contains(kind);

    private static Task Add(AsmSessionEventContext context, string kind, string text)
    {
        var http = context.HttpContext;
        if (http.Items[RaisedKey] is not HashSet<string> raised)
        {
            http.Items[RaisedKey] = raised = [];
        }

        raised.Add(kind);
        var log = http.RequestServices.GetRequiredService<DemoEventLog>();
        log.Append(new DemoEvent(log._time.GetUtcNow(), context.SessionHash, kind, text));
        return Task.CompletedTask;
    }

    private void Append(DemoEvent item)
    {
        lock (_gate)
        {
            _events.AddFirst(item);
            while (_events.Count > Capacity)
            {
                _events.RemoveLast();
            }
        }
    }
}
