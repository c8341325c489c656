using Asm.Caching.Sessions;

namespace Asm.Demo;

/// <summary>
/// The session events this app received, newest first, kept in memory (the last <see cref="Capacity"/>) for the page.
/// </summary>
/// <remarks>
/// Events fire while a session loads, before its id may be read, so a handler only notes its event on the request;
/// <see cref="DemoEventLogMiddleware"/> files the notes under the session's hash once the endpoint has run.
/// </remarks>
internal sealed class DemoEventLog(TimeProvider time)
{
    /// <summary>How many events the log keeps.</summary>
    public const int Capacity = 200;

    private static readonly object PendingKey = new();

    private readonly TimeProvider _time = time;
    private readonly LinkedList<DemoEvent> _events = new();
    private readonly Lock _gate = new();

    /// <summary>Asm's event callbacks, each noting its event on the request for the log.</summary>
    public static AsmSessionEvents CreateEvents() => new()
    {
        OnZombieKeyAccessed = context => Note(context.HttpContext, DemoEvent.ZombieKey,
            "A request sent the key replaced at log-in. It was served the live session and given the new key."),
        OnProfileChanged = context => Note(context.HttpContext, DemoEvent.ProfileChanged,
            $"Used from a new client, {DemoProfiles.Label(context.CurrentProfile)}, after " +
            $"{string.Join(", ", context.PreviousProfiles.Select(DemoProfiles.Label))}. Accepted: a handler may call Reject()."),
        OnInvalidSessionAccessed = context => Note(context.HttpContext, DemoEvent.InvalidSession,
            $"A cookie was not adopted ({context.Reason}); the request got a new session."),
        OnLockLost = context => Note(context.HttpContext, DemoEvent.LockLost,
            $"A {context.LockMode} request lost its lock lease; its commit was refused."),
    };

    /// <summary>The events of the session whose hash is <paramref name="session"/>, newest first.</summary>
    public IReadOnlyList<DemoEvent> Of(string session)
    {
        lock (_gate)
        {
            return [.. _events.Where(e => e.Session == session)];
        }
    }

    /// <summary>Whether an event of <paramref name="kind"/> was raised by the current request.</summary>
    public static bool Raised(HttpContext context, string kind) =>
        context.Items[PendingKey] is List<DemoEvent> pending && pending.Exists(e => e.Kind == kind);

    /// <summary>Files the events noted on the request under the hash of the session it ends with.</summary>
    public void Flush(HttpContext context)
    {
        if (context.Items[PendingKey] is not List<DemoEvent> pending)
        {
            return;
        }

        context.Items.Remove(PendingKey);
        var session = context.Session.IsAvailable ? SessionKey.Hash(context.Session.Id) : "-";
        lock (_gate)
        {
            foreach (var note in pending)
            {
                _events.AddFirst(note with { Session = session });
            }

            while (_events.Count > Capacity)
            {
                _events.RemoveLast();
            }
        }
    }

    private static Task Note(HttpContext context, string kind, string text)
    {
        if (context.Items[PendingKey] is not List<DemoEvent> pending)
        {
            context.Items[PendingKey] = pending = [];
        }

        var at = context.RequestServices.GetRequiredService<DemoEventLog>()._time.GetUtcNow();
        pending.Add(new DemoEvent(at, "", kind, text));
        return Task.CompletedTask;
    }
}
