using System.Reflection;
using Asm.Testing.Http;
using Asm.Testing.Redis;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Asm.SessionAdapter.Tests.Redis;

/// <summary>
/// An app as users write them today: Microsoft's Redis <c>IDistributedCache</c> (which brings StackExchange.Redis 2.x)
/// beside Asm's sessions on Redis, on whatever StackExchange.Redis the app resolves (2.x here, 3.x in the Redis3 line).
/// </summary>
public sealed class RedisBesideStockRedisCacheTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly RedisServer _server = new();

    public Task InitializeAsync() => _server.StartAsync();

    public Task DisposeAsync()
    {
        _server.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public void Client_Loaded_IsTheVersionTheAppReferences()
    {
        var version = typeof(IConnectionMultiplexer).Assembly.GetName().Version!;
        output.WriteLine($"StackExchange.Redis {typeof(IConnectionMultiplexer).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion}");
#if REDIS3
        Assert.Equal(3, version.Major);
#else
        Assert.Equal(2, version.Major);
#endif
    }

    [Fact]
    public async Task AsmSessionsAndStockRedisCache_InOneApp_BothStoreInRedisAndSurviveTheAppStopping()
    {
        var app = await SessionApp.StartAsync(
            b => b.UseRedisDriver(o =>
            {
                o.Configuration = _server.EndPoint;
                o.InstanceName = "sessions:";
            }),
            Map,
            services: s => s.AddStackExchangeRedisCache(o =>
            {
                o.Configuration = _server.EndPoint;
                o.InstanceName = "cache:";
            }));
        try
        {
            Assert.IsAssignableFrom<RedisCache>(app.Services.GetRequiredService<IDistributedCache>());
            var client = app.CreateClient();

            Assert.Equal("1", await client.GetStringAsync("/count"));
            Assert.Equal("2", await client.GetStringAsync("/count"));
            Assert.Equal("2", await client.GetStringAsync("/cached"));
        }
        finally
        {
            await app.DisposeAsync();
        }

        var keys = ((object?[])(await _server.ExecuteAsync("KEYS", "*"))!).Select(k => System.Text.Encoding.UTF8.GetString((byte[])k!)).ToList();
        Assert.Contains(keys, k => k.StartsWith("sessions:s:{", StringComparison.Ordinal));
        Assert.Contains("cache:last-count", keys);
    }

    private static void Map(WebApplication app)
    {
        app.MapGet("/count", async (HttpContext http, IDistributedCache cache) =>
        {
            await http.Session.LoadAsync();
            var count = (http.Session.GetInt32("count") ?? 0) + 1;
            http.Session.SetInt32("count", count);
            await cache.SetStringAsync("last-count", count.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return count;
        });
        app.MapGet("/cached", (IDistributedCache cache) => cache.GetStringAsync("last-count"));
    }
}
