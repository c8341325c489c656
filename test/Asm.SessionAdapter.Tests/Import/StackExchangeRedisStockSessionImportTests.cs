using Asm.Testing.Drivers;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Import;

/// <summary>
/// The stock session over Microsoft's <c>AddStackExchangeRedisCache</c> on a real <c>redis-server</c>, and after the
/// swap Asm's sessions on the Redis driver, on the same server.
/// </summary>
public sealed class StackExchangeRedisStockSessionImportTests(RedisDriverFixture redis) : StockSessionImportTests, IClassFixture<RedisDriverFixture>
{
    private readonly string _scope = Guid.NewGuid().ToString("N");

    protected override void AddStockCache(IServiceCollection services) => services.AddStackExchangeRedisCache(options =>
    {
        options.Configuration = redis.Server.EndPoint;
        options.InstanceName = _scope + ":stock:";
    });

    protected override void UseAsmDriver(IAsmSessionBuilder builder) => redis.Use(builder, _scope);
}
