using Asm.Testing.Http;
using Asm.Testing.Redis;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Asm.SessionAdapter.Tests.Redis;

/// <summary>Requests while the Redis server goes away and comes back, on a server of the test's own.</summary>
public sealed class RedisOutageRequestTests : IAsyncLifetime
{
    // Persisted on every write, so that what was committed before the outage is there after it.
    private readonly RedisServer _server = new() { ExtraArguments = ["--appendonly", "yes", "--appendfsync", "always"] };

    public Task InitializeAsync() => _server.StartAsync();

    public Task DisposeAsync()
    {
        _server.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task RedisDown_RequestsFailClearlyThenSucceedOnceItIsBack_NothingLost()
    {
        await using var app = await SessionApp.StartAsync(
            b => b.UseRedisDriver(o =>
            {
                o.Configuration = $"{_server.EndPoint},connectTimeout=500,syncTimeout=500";
                o.OperationTimeout = TimeSpan.FromSeconds(1);
            }),
            Map,
            o => o.LockLease = TimeSpan.FromSeconds(3));
        var client = app.CreateClient();
        await client.PostAsync("/add/before", null);

        _server.Stop();
        var asyncLoad = await client.GetStringAsync("/async");
        var syncLoad = await client.GetStringAsync("/sync");

        Assert.StartsWith("SessionStorageException: Failed loading session ", asyncLoad);
        Assert.Contains("Redis", asyncLoad);
        Assert.Contains(_server.EndPoint, asyncLoad);
        Assert.Equal("available=False", syncLoad);

        await _server.StartAsync();
        // The client reconnects with a growing back-off (up to 10 s between attempts), which a loaded machine stretches.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        string after;
        while ((after = await client.GetStringAsync("/async")).StartsWith("SessionStorageException", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Equal("before", after);
        await client.PostAsync("/add/after", null);
        Assert.Equal("after,before", await client.GetStringAsync("/async"));
    }

    [Fact]
    public async Task ReleasingCommitTimesOutThenRedisAnswersNoScript_TheNextRequestGetsTheLockLongBeforeTheLeaseEnds()
    {
        // The final commit, which releases the lock, is held (CLIENT PAUSE WRITE) past OperationTimeout, and so is the
        // release that gives the lease back after it; meanwhile Redis's script cache is emptied (SCRIPT FLUSH, as a
        // restart or a failover empties it), so both are refused with NOSCRIPT, having run nothing, once Redis wakes.
        var logs = new FakeLogCollector();
        var inside = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await SessionApp.StartAsync(
            b => b.UseRedisDriver(o =>
            {
                o.Configuration = _server.EndPoint;
                o.OperationTimeout = TimeSpan.FromSeconds(5);
            }),
            app =>
            {
                Map(app);
                app.MapPost("/held", async (HttpContext c) =>
                {
                    await c.Session.LoadAsync();
                    c.Session.SetString("held", "1");
                    inside.SetResult();
                    await go.Task;
                });
            },
            o =>
            {
                o.LockLease = TimeSpan.FromMinutes(10);
                o.LockWaitTimeout = TimeSpan.FromSeconds(30);
            },
            services: s => s.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs)));
        var client = app.CreateClient();
        await client.PostAsync("/add/before", null);
        await client.PostAsync("/add/again", null);

        var held = client.PostAsync("/held", null);
        await inside.Task;
        await _server.ExecuteAsync("CLIENT", "PAUSE", "60000", "WRITE");
        try
        {
            go.SetResult();
            await held;

            // The commit failed (its outcome unknown) and the release sent after it too (AbandonFailed, event 13).
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (!logs.GetSnapshot().Any(r => r.Id.Id == 13) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            Assert.Contains(logs.GetSnapshot(), r => r.Id.Id == 13);
            await _server.ExecuteAsync("SCRIPT", "FLUSH");
        }
        finally
        {
            await _server.ExecuteAsync("CLIENT", "UNPAUSE");
        }

        // Waits up to LockWaitTimeout (30 s) for the lock, which a lease of 10 minutes would hold until long after.
        var next = await client.PostAsync("/add/after", null);
        Assert.True(next.IsSuccessStatusCode, $"The next request failed: {await next.Content.ReadAsStringAsync()}");
        Assert.Equal("after,again,before", await client.GetStringAsync("/async"));
    }

    private static void Map(WebApplication app)
    {
        app.MapPost("/add/{name}", async (HttpContext c, string name) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString(name, "1");
        });
        app.MapGet("/async", async (HttpContext c) =>
        {
            try
            {
                await c.Session.LoadAsync();
                return string.Join(",", c.Session.Keys.Order());
            }
            catch (SessionStorageException e)
            {
                return $"{nameof(SessionStorageException)}: {e.Message}";
            }
        }).WithSessionLock(SessionLockMode.ReadOnly);
        app.MapGet("/sync", (HttpContext c) => $"available={c.Session.IsAvailable}").WithSessionLock(SessionLockMode.ReadOnly);
    }
}
