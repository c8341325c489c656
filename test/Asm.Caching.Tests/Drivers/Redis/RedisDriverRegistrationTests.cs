using Asm.Caching.Caching;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary><c>UseRedisDriver</c>: registration, start-up validation and lazy connection.</summary>
[Collection(RedisServerGroup.Name)]
public sealed class RedisDriverRegistrationTests(RedisServer server)
{
    [Fact]
    public async Task UseRedisDriver_ConfigurationString_ServesSessionsAndCacheFromOneDriver()
    {
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(options =>
        {
            options.Configuration = server.EndPoint;
            options.InstanceName = $"asm-test:{Guid.NewGuid():N}:";
        });
        await using var provider = services.BuildServiceProvider();

        var driver = Assert.IsType<RedisDriver>(provider.GetRequiredService<ISessionDriver>());
        Assert.Same(driver, provider.GetRequiredService<ICacheDriver>());
        var cache = provider.GetRequiredService<IDistributedCache>();
        await cache.SetAsync("key", [1, 2], new DistributedCacheEntryOptions());
        Assert.Equal([1, 2], await cache.GetAsync("key"));
    }

    [Fact]
    public async Task UseRedisDriver_ConnectionMultiplexerFactory_UsesItAndLeavesItOpen()
    {
        using var shared = await ConnectionMultiplexer.ConnectAsync(server.EndPoint);
        var calls = 0;
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(options =>
        {
            options.InstanceName = $"asm-test:{Guid.NewGuid():N}:";
            options.ConnectionMultiplexerFactory = () =>
            {
                calls++;
                return Task.FromResult<IConnectionMultiplexer>(shared);
            };
        });

        await using (var provider = services.BuildServiceProvider())
        {
            var cache = provider.GetRequiredService<ICacheDriver>();
            await cache.SetAsync("key", [1], new CacheEntryExpiration(DateTimeOffset.UtcNow, null, null), CancellationToken.None);
            Assert.Equal([1], await cache.GetAsync("key", DateTimeOffset.UtcNow, CancellationToken.None));
        }

        Assert.Equal(1, calls);
        Assert.True(shared.IsConnected);
    }

    [Fact]
    public void UseRedisDriver_NothingToConnectTo_FailsValidationNamingTheOption()
    {
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(_ => { });
        using var provider = services.BuildServiceProvider();

        var failure = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<RedisDriverOptions>>().Value);

        Assert.Contains("RedisDriverOptions.Configuration", failure.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("asm{tag}:", "RedisDriverOptions.InstanceName")]
    [InlineData(null, "RedisDriverOptions.InstanceName")]
    public void UseRedisDriver_BadInstanceName_FailsValidationNamingTheOption(string? instanceName, string expected)
    {
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(options =>
        {
            options.Configuration = "127.0.0.1:6379";
            options.InstanceName = instanceName!;
        });
        using var provider = services.BuildServiceProvider();

        var failure = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<RedisDriverOptions>>().Value);

        Assert.Contains(expected, failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UseRedisDriver_ZeroOperationTimeout_FailsValidationNamingTheOption()
    {
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(options =>
        {
            options.Configuration = "127.0.0.1:6379";
            options.OperationTimeout = TimeSpan.Zero;
        });
        using var provider = services.BuildServiceProvider();

        var failure = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<RedisDriverOptions>>().Value);

        Assert.Contains("RedisDriverOptions.OperationTimeout", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HostStart_InvalidRedisOptions_FailsAtStartUp()
    {
        using var host = new HostBuilder()
            .ConfigureServices(services => services.AddAsmDistributedCache().UseRedisDriver(options => options.Configuration = ",,,"))
            .Build();

        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("RedisDriverOptions.Configuration", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UseRedisDriver_EmptyConfigurationString_Throws()
    {
        var services = new ServiceCollection();

        Assert.Throws<ArgumentException>(() => services.AddAsmDistributedCache().UseRedisDriver(" "));
    }

    [Fact]
    public async Task ResolvingDriver_NoRedisListening_DoesNotConnectUntilFirstOperation()
    {
        // Port 1 on loopback: nothing listens there.
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver("127.0.0.1:1,connectTimeout=200");
        await using var provider = services.BuildServiceProvider();

        var driver = provider.GetRequiredService<ISessionDriver>();
        var failure = await Assert.ThrowsAsync<RedisDriverException>(() => driver.LoadAsync(
            new SessionLoadRequest { Key = SessionKey.New(), Now = DateTimeOffset.UtcNow, IdleTimeout = TimeSpan.FromMinutes(1) },
            CancellationToken.None).AsTask());

        Assert.Contains("Redis at 127.0.0.1:1", failure.Message, StringComparison.Ordinal);
    }
}
