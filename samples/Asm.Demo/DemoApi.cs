using System.Globalization;
using Asm.Caching.Sessions;
using Microsoft.Extensions.Options;

namespace Asm.Demo;

/// <summary>The endpoints behind the page's buttons, each in the lock mode that its action shows.</summary>
internal static class DemoApi
{
    /// <summary>How long an increment waits between reading and writing its counter, so that races show.</summary>
    public static readonly TimeSpan IncrementGap = TimeSpan.FromMilliseconds(10);

    /// <summary>How long the slow request sleeps before it reads and writes its session.</summary>
    public static readonly TimeSpan SlowRequest = TimeSpan.FromSeconds(1.5);

    /// <summary>How long "Hold the lock" holds its Exclusive lock.</summary>
    public static readonly TimeSpan Hold = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The user "Log in" signs in as: ada, one of her own per browser (the short hash of its session), so that the
    /// visitors of one demo neither list nor log out each other's devices.
    /// </summary>
    public static string UserOf(string sessionId) => "ada-" + SessionKey.Hash(sessionId);

    /// <summary>Whether <paramref name="user"/> has the shape of <see cref="UserOf"/>.</summary>
    public static bool IsDemoUser(string? user) =>
        user is { Length: 12 } && user.StartsWith("ada-", StringComparison.Ordinal) && user[4..].All(char.IsAsciiHexDigitLower);

    public static void MapDemoApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api");

        // Exclusive, the default mode: the lock is taken at load and released after commit.
        api.MapPost("/start", async (HttpContext context, TimeProvider time) =>
        {
            var session = context.Session;
            await session.LoadAsync(context.RequestAborted);
            if (session.GetString("created") is null)
            {
                session.SetString("created", time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture));
            }

            return Describe(session);
        });

        api.MapGet("/state", async (HttpContext context, DemoStorage storage, DemoEventLog log) =>
        {
            await context.Session.LoadAsync(context.RequestAborted);
            var session = Describe(context.Session);
            return new { session, storage = storage.Description, events = log.Of(session.Id, context.Session.UserId) };
        }).WithSessionLock(SessionLockMode.ReadOnly);

        api.MapGet("/events", async (HttpContext context, DemoEventLog log) =>
        {
            await context.Session.LoadAsync(context.RequestAborted);
            return log.Of(SessionKey.Hash(context.Session.Id), context.Session.UserId);
        }).WithSessionLock(SessionLockMode.ReadOnly);

        // "Fire 50 parallel increments": the same read-modify-write under two lock modes.
        api.MapPost("/counters/reset", async (HttpContext context) =>
        {
            await context.Session.LoadAsync(context.RequestAborted);
            context.Session.SetString("exclusive", "0");
            context.Session.SetString("lockless", "0");
        });
        api.MapPost("/counters/exclusive", (HttpContext context, CancellationToken aborted) => IncrementAsync(context.Session, "exclusive", aborted));
        api.MapPost("/counters/lockless", (HttpContext context, CancellationToken aborted) => IncrementAsync(context.Session, "lockless", aborted))
            .WithSessionLock(SessionLockMode.Lockless);

        // "Log in": a slow request sent with the old key finishes after the key was regenerated.
        api.MapPost("/slow-write", async (HttpContext context, DemoLogIns logIns, IOptions<SessionOptions> options) =>
        {
            // The session loads lazily: the slow request reads it only now, after the log-in replaced its key.
            await logIns.SleepThenWaitAsync(context.Request.Cookies[options.Value.Cookie.Name!], SlowRequest, context.RequestAborted);
            await context.Session.LoadAsync(context.RequestAborted);
            context.Session.SetString("cart", "3 books");
            return new { zombie = DemoEventLog.Raised(context, DemoEvent.ZombieKey) };
        });
        api.MapPost("/login", async (HttpContext context, DemoLogIns logIns, IOptions<SessionOptions> options) =>
        {
            await context.Session.LoadAsync(context.RequestAborted);
            var user = UserOf(context.Session.Id);
            await context.Session.BindUserAsync(user, context.RequestAborted);
            logIns.LoggedIn(context.Request.Cookies[options.Value.Cookie.Name!]);
            context.Session.SetString("user", user);
            return new { id = SessionKey.Hash(context.Session.Id), user };
        });

        // "Your devices": the signed-in user's sessions, another device signing in, and "log out other devices".
        api.MapGet("/devices", async (HttpContext context, IAsmSessionManager sessions) =>
        {
            await context.Session.LoadAsync(context.RequestAborted);
            if (context.Session.UserId is not { } user)
            {
                return Results.BadRequest("Log in first: this session is not bound to a user.");
            }

            var devices = await sessions.GetUserSessionsAsync(user, context.RequestAborted);
            return Results.Ok(devices.Reverse().Select(d => new
            {
                id = SessionKey.Hash(d.SessionId),
                current = d.SessionId == context.Session.Id,
                profile = d.Profiles.Count > 0 ? DemoProfiles.Label(d.Profiles[^1]) : "",
                created = d.CreatedAt,
                lastSeen = d.LastAccessedAt,
            }));
        }).WithSessionLock(SessionLockMode.ReadOnly);
        api.MapPost("/devices/sign-in-elsewhere", async (HttpContext context, string user) =>
        {
            // Sent by the page without its cookies and with X-Demo-Client: a new session of the same user, on
            // "another device".
            if (!IsDemoUser(user))
            {
                return Results.BadRequest("user must be the one \"Log in\" signed in as (ada-, then 8 hex digits).");
            }

            context.Session.SetString("user", user);
            await context.Session.BindUserAsync(user, context.RequestAborted);
            return Results.Ok(new { id = SessionKey.Hash(context.Session.Id) });
        });
        api.MapPost("/devices/logout-others", async (HttpContext context, IAsmSessionManager sessions) =>
        {
            await context.Session.LoadAsync(context.RequestAborted);
            var ended = context.Session.UserId is { } user
                ? await sessions.DestroyUserSessionsAsync(user, context.Session.Id, context.RequestAborted)
                : 0;
            return new { ended };
        }).WithSessionLock(SessionLockMode.ReadOnly);

        // "Hold the lock for 3 s" and the reads that answer meanwhile.
        api.MapPost("/hold", async (HttpContext context, DemoLockHolders holders, TimeProvider time) =>
        {
            await context.Session.LoadAsync(context.RequestAborted);
            using (holders.Hold(context.Session.Id))
            {
                await Task.Delay(Hold, context.RequestAborted);
            }

            context.Session.SetString("heldUntil", time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture));
        });
        api.MapGet("/peek", [SessionLock(SessionLockMode.ReadOnly)] (HttpContext context, DemoLockHolders holders) => PeekAsync(context, holders));
        api.MapGet("/peek-exclusive", (HttpContext context, DemoLockHolders holders) => PeekAsync(context, holders));

        // "Destroy": the record goes, the cookie is expired, and the next request starts a new session.
        api.MapPost("/destroy", async (HttpContext context) =>
        {
            await context.Session.LoadAsync(context.RequestAborted);
            var destroyed = SessionKey.Hash(context.Session.Id);
            await context.Session.DestroyAsync(context.RequestAborted);
            return new { destroyed };
        });
    }

    private static async Task<int> IncrementAsync(ISession session, string counter, CancellationToken aborted)
    {
        await session.LoadAsync(aborted);
        var value = int.Parse(session.GetString(counter) ?? "0", CultureInfo.InvariantCulture);
        await Task.Delay(IncrementGap, aborted);
        session.SetString(counter, (value + 1).ToString(CultureInfo.InvariantCulture));
        return value + 1;
    }

    /// <summary>Loads asynchronously first: in Exclusive mode the load waits for the lock, which must not block a thread.</summary>
    private static async Task<object> PeekAsync(HttpContext context, DemoLockHolders holders)
    {
        await context.Session.LoadAsync(context.RequestAborted);
        return new
        {
            holding = holders.IsHeld(context.Session.Id),
            mode = context.Session.LockMode.ToString(),
            profileChanged = DemoEventLog.Raised(context, DemoEvent.ProfileChanged),
        };
    }

    private static DemoSession Describe(ISession session)
    {
        var values = session.Keys
            .Order(StringComparer.Ordinal)
            .Select(name => new DemoValue(name, session.GetString(name) ?? ""))
            .ToList();
        return new DemoSession(SessionKey.Hash(session.Id), session.GetString("created"), values);
    }

    private sealed record DemoSession(string Id, string? Created, IReadOnlyList<DemoValue> Values);

    private sealed record DemoValue(string Name, string Value);
}
