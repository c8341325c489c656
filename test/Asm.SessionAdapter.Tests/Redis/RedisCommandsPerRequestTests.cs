using Asm.Testing.Http;
using Asm.Testing.Redis;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Asm.SessionAdapter.Tests.Redis;

/// <summary>
/// Redis commands per request, counted from <c>INFO commandstats</c> on a real server: Asm against the stock session
/// over Asm's Redis <c>IDistributedCache</c>. The server is this class's own, so no other test's commands are counted.
/// </summary>
public sealed class RedisCommandsPerRequestTests(RedisServer redis, ITestOutputHelper output) : IClassFixture<RedisServer>
{
    private const int Requests = 20;

    [Fact]
    public async Task AsmSession_ReadOnlyRequestCostsOneCommand_ReadWriteRequestTwo()
    {
        await using var app = await StartAsync(s => s.AddAsmSession().UseRedisDriver(redis.EndPoint));

        var (read, write) = await MeasureAsync(app);

        output.WriteLine($"Asm over Redis: {read:0.##} command(s) per read-only request, {write:0.##} per read-write request.");
        Assert.Equal(1, read);
        Assert.Equal(2, write);
    }

    [Fact]
    public async Task UsersAndEnds_CostNothingOnOrdinaryRequests_OneCommandOnCreation_AndBindingIsMeasured()
    {
        await using var app = await StartAsync(s => s.AddAsmSession().UseRedisDriver(redis.EndPoint));
        var server = app.GetTestServer();
        await NewClient(server).PostAsync("/bind", null); // warms the server's script cache

        // A session's first write also schedules its end check: one more command, once per session.
        var create = await CommandsPerRequestAsync(() => NewClient(server).PostAsync("/write", null));

        // Binding a new session: its creation and first end check, then the bind script, the index update, the info
        // read and the end check again (no cap, no former user).
        var bind = await CommandsPerRequestAsync(() => NewClient(server).PostAsync("/bind", null));

        using var bound = NewClient(server);
        await bound.PostAsync("/bind", null);
        var (read, write) = await MeasureAsync(app, bound);

        output.WriteLine($"Asm over Redis: {create:0.##} command(s) per creating request, {bind:0.##} per binding request " +
            $"(which also creates), and on a bound session {read:0.##} per read-only request, {write:0.##} per read-write request.");
        Assert.Equal(2, create);
        Assert.Equal(1, read);
        Assert.Equal(2, write);
        Assert.Equal(6, bind);
    }

    [Fact]
    public async Task StockSessionOverAsmRedisCache_IsMeasuredForComparison()
    {
        await using var app = await StartAsync(s =>
        {
            s.AddAsmDistributedCache().UseRedisDriver(redis.EndPoint);
            s.AddSession();
        });

        var (read, write) = await MeasureAsync(app);

        // The stock session reads on load and refreshes (or writes) on commit, whatever the request did.
        output.WriteLine($"Stock AddSession() over Asm's Redis IDistributedCache: {read:0.##} command(s) per read-only request, {write:0.##} per read-write request.");
        Assert.Equal(2, read);
        Assert.Equal(2, write);
    }

    private static async Task<WebApplication> StartAsync(Action<IServiceCollection> register)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders().SetMinimumLevel(LogLevel.Warning);
        register(builder.Services);
        var app = builder.Build();
        app.UseSession();
        Map(app);
        await app.StartAsync();
        return app;
    }

    private static HttpClient NewClient(TestServer server) =>
        new(new CookieJarHandler(server.CreateHandler())) { BaseAddress = new Uri("http://localhost/") };

    private async Task<(double Read, double Write)> MeasureAsync(WebApplication app)
    {
        using var client = NewClient(app.GetTestServer());
        return await MeasureAsync(app, client);
    }

    private async Task<(double Read, double Write)> MeasureAsync(WebApplication app, HttpClient client)
    {
        // Establish the session and warm the server's script cache.
        await client.PostAsync("/write", null);
        await client.GetStringAsync("/read");

        var read = await CommandsPerRequestAsync(() => client.GetStringAsync("/read"));
        var write = await CommandsPerRequestAsync(() => client.PostAsync("/write", null));
        return (read, write);
    }

    private async Task<double> CommandsPerRequestAsync(Func<Task> request)
    {
        var before = await redis.GetCommandStatsAsync();
        for (var i = 0; i < Requests; i++)
        {
            await request();
        }

        var delta = (await redis.GetCommandStatsAsync()).Since(before);
        output.WriteLine($"commandstats delta over {Requests} requests: {delta}");
        return delta.TopLevelCommands(RedisCommandStats.CommandsRunByAsmScripts) / (double)Requests;
    }

    private static void Map(WebApplication app)
    {
        app.MapGet("/read", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetInt32("n") ?? 0;
        }).WithSessionLock(SessionLockMode.ReadOnly);
        app.MapPost("/write", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetInt32("n", (c.Session.GetInt32("n") ?? 0) + 1);
        });
        app.MapPost("/bind", async (HttpContext c) =>
        {
            c.Session.SetInt32("n", 0);
            await c.Session.BindUserAsync("ada");
        });
    }
}
