using Asm.Testing.Http;
using Asm.Testing.Redis;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

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
