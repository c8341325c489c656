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

    [Theory]
    [InlineData("", 0)]
    [InlineData("cache:", 1)]
    public async Task StockRedisCacheOnTheSameRedis_ReachesAsmsKeysOnlyWhenAsmsPrefixStartsWithItsOwn(string cachePrefix, int devicesLeft)
    {
        // An app removing a cache entry a request names. Microsoft's RedisCache, with its default empty InstanceName,
        // reaches every key of the server: a user's index (named by the SHA-256 of the user id, which anyone can
        // compute) removed that way hides the user's sessions from "log out other devices". With a prefix that Asm's
        // InstanceName does not start with, it reaches nothing of Asm's (docs/drivers.md).
        await using var app = await SessionApp.StartAsync(
            b => b.UseRedisDriver(o => (o.Configuration, o.InstanceName) = (_server.EndPoint, "sessions:")),
            web =>
            {
                web.MapPost("/login", async (HttpContext c) => await c.Session.BindUserAsync("ada"));
                web.MapGet("/devices", async (IAsmSessionManager sessions) => (await sessions.GetUserSessionsAsync("ada")).Count);
                web.MapPost("/forget", (IDistributedCache cache, string key) => cache.RemoveAsync(key));
            },
            services: s => s.AddStackExchangeRedisCache(o => (o.Configuration, o.InstanceName) = (_server.EndPoint, cachePrefix)));
        var client = app.CreateClient();
        (await client.PostAsync("/login", null)).EnsureSuccessStatusCode();
        Assert.Equal("1", await client.GetStringAsync("/devices"));
        var index = "sessions:u:{" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("ada"u8)) + "}";
        Assert.Equal(1L, await _server.ExecuteAsync("EXISTS", index));

        (await client.PostAsync("/forget?key=" + Uri.EscapeDataString(index), null)).EnsureSuccessStatusCode();

        Assert.Equal(devicesLeft.ToString(System.Globalization.CultureInfo.InvariantCulture), await client.GetStringAsync("/devices"));
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
