using Asm.SessionAdapter;

namespace Asm.Benchmarks.App;

/// <summary>
/// The endpoints wrk drives. Every handler awaits <see cref="ISession.LoadAsync"/> first, as an application should,
/// so that no provider blocks a thread on storage I/O.
/// </summary>
/// <remarks>
/// The load is not cancelled when the client goes away unless the app runs with <c>--load-cancellation true</c>:
/// wrk drops its in-flight requests at the end of every run, and an Exclusive load cancelled after Redis granted the
/// lease leaves the session locked until the lease expires (docs/benchmarks.md, "Known problems"), which would leak
/// from one measured run into the next.
/// </remarks>
/// <remarks>
/// <c>/read</c> and <c>/write</c> run in the app's default lock mode (<c>--lock-mode</c>); the same handlers are also
/// mapped under a prefix per mode with <c>WithSessionLock</c>: <c>/exclusive/write</c>, <c>/readonly/read</c>,
/// <c>/lockless/write</c> and so on. The stock session ignores the lock metadata.
/// </remarks>
internal sealed class SessionEndpoints(bool loadCancellation)
{
    private const string UserName = "user";
    private const string Counter = "counter";
    private const string Roles = "roles";
    private const string Cart = "cart";

    private static readonly (string Prefix, SessionLockMode Mode)[] Modes =
    [
        ("/exclusive", SessionLockMode.Exclusive),
        ("/lockonwrite", SessionLockMode.LockOnWrite),
        ("/lockless", SessionLockMode.Lockless),
        ("/readonly", SessionLockMode.ReadOnly),
    ];

    private static readonly byte[] CartBytes = [.. Enumerable.Range(0, 200).Select(i => (byte)i)];

    public void Map(WebApplication app)
    {
        // Typed as Delegate so that minimal APIs write the returned string (a method group binds as a RequestDelegate).
        Delegate seed = SeedAsync, read = ReadAsync, write = WriteAsync;
        app.MapGet("/seed", seed).WithSessionLock(SessionLockMode.Exclusive);
        app.MapGet("/read", read);
        app.MapGet("/write", write);
        foreach (var (prefix, mode) in Modes)
        {
            var group = app.MapGroup(prefix).WithSessionLock(mode);
            group.MapGet("/read", read);
            if (mode != SessionLockMode.ReadOnly)
            {
                group.MapGet("/write", write);
            }
        }
    }

    private CancellationToken LoadToken(HttpContext context) =>
        loadCancellation ? context.RequestAborted : CancellationToken.None;

    /// <summary>Establishes the session with a few values of a typical size (about 250 bytes in all).</summary>
    private async Task<string> SeedAsync(HttpContext context)
    {
        var session = context.Session;
        await session.LoadAsync(LoadToken(context));
        session.SetString(UserName, "bench-user-0042");
        session.SetString(Roles, "reader,editor");
        session.SetInt32(Counter, 0);
        session.Set(Cart, CartBytes);
        return "seeded";
    }

    /// <summary>Reads one value.</summary>
    private async Task<string> ReadAsync(HttpContext context)
    {
        var session = context.Session;
        await session.LoadAsync(LoadToken(context));
        return session.GetString(UserName) ?? "unknown";
    }

    /// <summary>Read-modify-write of a counter.</summary>
    private async Task<string> WriteAsync(HttpContext context)
    {
        var session = context.Session;
        await session.LoadAsync(LoadToken(context));
        var value = (session.GetInt32(Counter) ?? 0) + 1;
        session.SetInt32(Counter, value);
        return value.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
