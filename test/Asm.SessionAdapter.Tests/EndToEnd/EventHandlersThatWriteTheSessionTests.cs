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
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a =>
            {
                a.MapPost("/seed", (HttpContext c) => c.Session.SetString("cart", "book"));
                a.MapGet("/read", (HttpContext c) => c.Session.GetString("cart")).WithSessionLock(mode);
                a.MapGet("/seen", (HttpContext c) => c.Session.GetString("seen")).WithSessionLock(SessionLockMode.ReadOnly);
            },
            o => o.Events.OnProfileChanged = async c =>
            {
                // The load raising this event has not finished: the handler's escalation must not wait for it.
                await c.HttpContext.Session.AcquireWriteLockAsync();
                c.HttpContext.Session.SetString("seen", "another browser");
            });
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
        await using var app = await SessionApp.StartAsync(
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
            o => o.Events.OnZombieKeyAccessed = async c =>
            {
                // The load raising this event has not finished: the handler's escalation must not wait for it.
                await c.HttpContext.Session.AcquireWriteLockAsync();
                c.HttpContext.Session.SetString("seen", "the old key");
            });
        var owner = app.CreateClient(out var jar);
        await owner.PostAsync("/seed", null);
        var staleTab = app.CreateClient(out var staleJar);
        staleJar.Cookies.Add(jar.Cookies.GetAllCookies());
        await owner.PostAsync("/login", null);

        Assert.Equal("book", await staleTab.GetStringAsync("/read").WaitAsync(Bound));

        Assert.Equal("the old key", await owner.GetStringAsync("/seen").WaitAsync(Bound));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SessionCreatedHandler_ThatWritesUnderLockOnWriteAndThenThrows_LeavesTheSessionUnlocked(bool explicitCommit)
    {
        await using var app = await SessionApp.StartAsync(
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
                }).WithSessionLock(SessionLockMode.LockOnWrite);
                a.MapPost("/inc", (HttpContext c) => c.Session.SetInt32("n", (c.Session.GetInt32("n") ?? 0) + 1));
            },
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
}
