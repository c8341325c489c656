using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.EndToEnd;

/// <summary>
/// Event handlers that write the session, in every lock mode: a write there may have to take the lock, from inside the
/// load or the commit that raised the event.
/// </summary>
public sealed class EventHandlersThatWriteTheSessionTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(SessionLockMode.Exclusive)]
    [InlineData(SessionLockMode.LockOnWrite)]
    [InlineData(SessionLockMode.Lockless)]
    [InlineData(SessionLockMode.ReadOnly)]
    public async Task ProfileChangedHandler_ThatTakesTheWriteLockAndWrites_CompletesAndItsWriteIsStored(SessionLockMode mode)
    {
        await using var app = await StartLoadEventAppAsync(mode, o => o.Events.OnProfileChanged = c => TakeTheLockAndWriteAsync(c.HttpContext, "another browser"));
        var owner = app.CreateClient(out var jar);
        owner.DefaultRequestHeaders.UserAgent.ParseAdd("Owner/1.0");
        await owner.PostAsync("/seed", null);
        var other = app.CreateClient(out var otherJar);
        otherJar.Cookies.Add(jar.Cookies.GetAllCookies());
        other.DefaultRequestHeaders.UserAgent.ParseAdd("Other/2.0");

        Assert.Equal("book", await other.GetStringAsync("/read").WaitAsync(Bound));

        Assert.Equal("another browser", await owner.GetStringAsync("/seen").WaitAsync(Bound));
    }

    [Theory]
    [InlineData(SessionLockMode.LockOnWrite)]
    [InlineData(SessionLockMode.ReadOnly)]
    public async Task ZombieKeyHandler_ThatTakesTheWriteLockAndWrites_CompletesAndItsWriteIsStored(SessionLockMode mode)
    {
        await using var app = await StartLoadEventAppAsync(mode, o => o.Events.OnZombieKeyAccessed = c => TakeTheLockAndWriteAsync(c.HttpContext, "the old key"));
        var owner = app.CreateClient(out var jar);
        await owner.PostAsync("/seed", null);
        var staleTab = app.CreateClient(out var staleJar);
        staleJar.Cookies.Add(jar.Cookies.GetAllCookies());
        await owner.PostAsync("/login", null);

        Assert.Equal("book", await staleTab.GetStringAsync("/read").WaitAsync(Bound));

        Assert.Equal("the old key", await owner.GetStringAsync("/seen").WaitAsync(Bound));
    }

    [Theory]
    [InlineData(SessionLockMode.Exclusive, false)]
    [InlineData(SessionLockMode.Exclusive, true)]
    [InlineData(SessionLockMode.LockOnWrite, false)]
    [InlineData(SessionLockMode.LockOnWrite, true)]
    [InlineData(SessionLockMode.Lockless, false)]
    public async Task OnSessionCreated_HandlerThatWritesTheSession_HasItsWriteStored(SessionLockMode mode, bool explicitCommit)
    {
        var seen = new List<string?>();
        await using var app = await StartCreationAppAsync(
            mode,
            explicitCommit,
            o => o.Events.OnSessionCreated = context =>
            {
                // Raised by the commit that stored the session: the middleware's final one unless the app committed.
                seen.Add(context.HttpContext.Session.GetString("cart"));
                context.HttpContext.Session.SetString("since", "2026-11-30");
                return Task.CompletedTask;
            });
        var client = app.CreateClient();

        Assert.Equal("ok", await (await client.PostAsync("/add", null)).Content.ReadAsStringAsync());

        Assert.Equal(["book"], seen);
        Assert.Equal("book 2026-11-30", await client.GetStringAsync("/read"));
        // Nothing is left locked by the handler's write (LockOnWrite takes the lock for it).
        Assert.Equal("ok", await (await client.PostAsync("/add", null)).Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SessionCreatedHandler_ThatWritesUnderLockOnWriteAndThenThrows_LeavesTheSessionUnlocked(bool explicitCommit)
    {
        await using var app = await StartCreationAppAsync(
            SessionLockMode.LockOnWrite,
            explicitCommit,
            o =>
            {
                // A lease left behind would hold the next write for LockWaitTimeout, then fail it.
                o.LockLease = TimeSpan.FromMinutes(5);
                o.LockWaitTimeout = TimeSpan.FromSeconds(5);
                o.Events.OnSessionCreated = c =>
                {
                    c.HttpContext.Session.SetString("since", "2026-11-30");
                    throw new InvalidOperationException("The handler failed after its write.");
                };
            });
        var client = app.CreateClient();

        // The stock middleware logs what its final commit throws; the response has been sent by then.
        await client.PostAsync("/add", null).WaitAsync(Bound);

        Assert.Equal(System.Net.HttpStatusCode.OK, (await client.PostAsync("/inc", null).WaitAsync(Bound)).StatusCode);
    }

    /// <summary>
    /// An app for the load's events: <c>POST /seed</c> stores a cart, <c>POST /login</c> regenerates the key,
    /// <c>GET /read</c> reads the cart in <paramref name="mode"/>, <c>GET /seen</c> reads what a handler wrote.
    /// </summary>
    private static Task<SessionApp> StartLoadEventAppAsync(SessionLockMode mode, Action<AsmSessionOptions> events) =>
        SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a =>
            {
                a.MapPost("/seed", (HttpContext c) => c.Session.SetString("cart", "book"));
                a.MapPost("/login", async (HttpContext c) =>
                {
                    await c.Session.LoadAsync();
                    await c.Session.RegenerateIdAsync();
                });
                a.MapGet("/read", (HttpContext c) => c.Session.GetString("cart")).WithSessionLock(mode);
                a.MapGet("/seen", (HttpContext c) => c.Session.GetString("seen")).WithSessionLock(SessionLockMode.ReadOnly);
            },
            events);

    /// <summary>
    /// A handler's write that takes the lock first. The load raising the event has not finished: the handler's
    /// escalation must not wait for it.
    /// </summary>
    private static async Task TakeTheLockAndWriteAsync(HttpContext context, string seen)
    {
        await context.Session.AcquireWriteLockAsync();
        context.Session.SetString("seen", seen);
    }

    /// <summary>
    /// An app for <c>OnSessionCreated</c>: <c>POST /add</c> makes the session in <paramref name="mode"/> (committing it
    /// itself with <paramref name="explicitCommit"/>, and going on if the handler throws there), <c>GET /read</c>
    /// reads it, <c>POST /inc</c> writes it in <see cref="SessionLockMode.Exclusive"/>.
    /// </summary>
    private static Task<SessionApp> StartCreationAppAsync(SessionLockMode mode, bool explicitCommit, Action<AsmSessionOptions> configure) =>
        SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a =>
            {
                a.MapPost("/add", async (HttpContext c) =>
                {
                    c.Session.SetString("cart", "book");
                    if (explicitCommit)
                    {
                        try
                        {
                            await c.Session.CommitAsync();
                        }
                        catch (InvalidOperationException)
                        {
                            // The handler's failure, caught by the app.
                        }
                    }

                    return "ok";
                }).WithSessionLock(mode);
                a.MapGet("/read", (HttpContext c) => $"{c.Session.GetString("cart")} {c.Session.GetString("since")}")
                    .WithSessionLock(SessionLockMode.ReadOnly);
                a.MapPost("/inc", (HttpContext c) => c.Session.SetInt32("n", (c.Session.GetInt32("n") ?? 0) + 1));
            },
            configure);
}
