using System.Diagnostics;
using Asm.Caching.Caching;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using Asm.Testing.Waiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// The three ways to connect, shaped like the stock <c>RedisCacheOptions</c>: <c>Configuration</c>,
/// <c>ConfigurationOptions</c> and the application's own multiplexer from <c>ConnectionMultiplexerFactory</c>.
/// </summary>
public sealed class RedisConnectionOptionsTests : IAsyncLifetime
{
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(30);
    private readonly RedisServer _server = new();

    public Task InitializeAsync() => _server.StartAsync();

    public Task DisposeAsync()
    {
        _server.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task AppMultiplexer_AfterAppStops_IsStillConnectedUsableAndFreeOfTheDriversHandlers()
    {
        var app = await ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions
        {
            EndPoints = { _server.EndPoint },
            AbortOnConnectFail = false,
        });
        try
        {
            var logger = new FakeLogger<RedisDriver>();
            var instance = $"asm-test:{Guid.NewGuid():N}:";
            var calls = 0;
            var services = new ServiceCollection();
            services.AddSingleton<ILogger<RedisDriver>>(logger);
            services.AddAsmDistributedCache().UseRedisDriver(options =>
            {
                options.InstanceName = instance;
                options.Configuration = "127.0.0.1:1"; // The factory wins over both other ways.
                options.ConnectionMultiplexerFactory = () =>
                {
                    Interlocked.Increment(ref calls);
                    return Task.FromResult<IConnectionMultiplexer>(app);
                };
            });

            await using (var provider = services.BuildServiceProvider())
            {
                var driver = provider.GetRequiredService<ISessionDriver>();
                var key = await SessionSteps.CreateAsync(driver, TimeProvider.System);
                Assert.Equal(SessionLoadStatus.Found, (await SessionSteps.LoadAsync(driver, TimeProvider.System, key)).Status);
                await WaitForSubscribersAsync(instance + "asm:released", 1);
            }

            Assert.Equal(1, calls);
            Assert.True(app.IsConnected);
            var database = app.GetDatabase();
            await database.StringSetAsync("app-key", "still mine");
            Assert.Equal("still mine", (string?)await database.StringGetAsync("app-key"));

            // The driver's release subscription is gone from the app's multiplexer.
            await WaitForSubscribersAsync(instance + "asm:released", 0);

            // Its event handlers too: the app's connection failing and coming back is not logged by the stopped driver.
            var logged = logger.Collector.Count;
            _server.Stop();
            await _server.StartAsync();
            await Eventually.HoldsAsync(
                async () =>
                {
                    await app.GetDatabase().PingAsync();
                    return true;
                },
                RecoveryTimeout,
                "the app's connection to come back",
                NotConnectedYet);
            Assert.Equal(logged, logger.Collector.Count);
        }
        finally
        {
            await app.DisposeAsync();
        }
    }

    [Fact]
    public async Task AppMultiplexerFromTheContainer_DisposedBeforeTheDriverAtShutdown_ShutdownDisposesEverythingWithoutThrowing()
    {
        // The usual wiring: the app's multiplexer is a singleton the factory resolves on the driver's first
        // operation. It is made after the driver, so the container disposes it first. (Whether the client then
        // refuses the driver's unsubscription depends on a race inside it: a few shutdowns make it likely.)
        for (var shutdown = 0; shutdown < 5; shutdown++)
        {
            var instance = $"asm-test:{Guid.NewGuid():N}:";
            var services = new ServiceCollection();
            services.AddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(new ConfigurationOptions
            {
                EndPoints = { _server.EndPoint },
                AbortOnConnectFail = false,
            }));
            var disposedLast = new DisposalProbe();
            services.AddSingleton(_ => disposedLast);
            services.AddAsmDistributedCache().UseRedisDriver(options => options.InstanceName = instance);
            services.AddOptions<RedisDriverOptions>().Configure<IServiceProvider>((options, provider) =>
                options.ConnectionMultiplexerFactory = () => Task.FromResult(provider.GetRequiredService<IConnectionMultiplexer>()));
            var provider = services.BuildServiceProvider();
            provider.GetRequiredService<DisposalProbe>();
            var driver = provider.GetRequiredService<ISessionDriver>();
            var key = await SessionSteps.CreateAsync(driver, TimeProvider.System);
            Assert.Equal(SessionLoadStatus.Found, (await SessionSteps.LoadAsync(driver, TimeProvider.System, key)).Status);
            await WaitForSubscribersAsync(instance + "asm:released", 1);

            await provider.DisposeAsync();

            Assert.True(disposedLast.Disposed);
        }
    }

    [Fact]
    public async Task OwnMultiplexer_DriverDisposed_IsClosed()
    {
        var instance = $"asm-test:{Guid.NewGuid():N}:";
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(options =>
        {
            options.Configuration = _server.EndPoint;
            options.InstanceName = instance;
        });
        var provider = services.BuildServiceProvider();
        var driver = provider.GetRequiredService<ISessionDriver>();
        await SessionSteps.CreateAsync(driver, TimeProvider.System);
        await WaitForSubscribersAsync(instance + "asm:released", 1);

        await provider.DisposeAsync();

        await WaitForSubscribersAsync(instance + "asm:released", 0);
    }

    [Fact]
    public async Task ConfigurationOptions_Set_WinsOverConfigurationAndIsLeftUnchanged()
    {
        var configuration = new ConfigurationOptions { EndPoints = { _server.EndPoint }, ConnectTimeout = 2000 };
        var backlog = configuration.BacklogPolicy;
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(options =>
        {
            options.ConfigurationOptions = configuration;
            options.Configuration = "127.0.0.1:1";
            options.InstanceName = $"asm-test:{Guid.NewGuid():N}:";
        });
        await using var provider = services.BuildServiceProvider();
        var cache = provider.GetRequiredService<ICacheDriver>();

        await cache.SetAsync("key", [7], new CacheEntryExpiration(DateTimeOffset.UtcNow, null, null), CancellationToken.None);

        Assert.Equal([7], await cache.GetAsync("key", DateTimeOffset.UtcNow, CancellationToken.None));
        Assert.Same(backlog, configuration.BacklogPolicy);
        Assert.True(configuration.AbortOnConnectFail);
    }

    [Fact]
    public async Task ConfigurationOptions_ServerDown_OperationFailsAtOnceNamingTheEndpoint()
    {
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(options =>
        {
            options.ConfigurationOptions = new ConfigurationOptions { EndPoints = { _server.EndPoint } };
            options.InstanceName = $"asm-test:{Guid.NewGuid():N}:";
            options.OperationTimeout = TimeSpan.FromSeconds(60);
        });
        await using var provider = services.BuildServiceProvider();
        var cache = provider.GetRequiredService<ICacheDriver>();
        await cache.SetAsync("key", [1], new CacheEntryExpiration(DateTimeOffset.UtcNow, null, null), CancellationToken.None);
        _server.Stop();

        var watch = Stopwatch.StartNew();
        var failure = await Assert.ThrowsAsync<RedisDriverException>(() => cache.GetAsync("key", DateTimeOffset.UtcNow, CancellationToken.None).AsTask());

        // Fail-fast, not the 60-second OperationTimeout (half of it absorbs a busy machine): nothing waits in the
        // client's backlog.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"Failing took {watch.Elapsed}.");
        Assert.Contains(_server.EndPoint, failure.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("serviceName=mymaster", "RedisDriverOptions.Configuration", "no sentinel")]
    [InlineData(",,,", "RedisDriverOptions.Configuration", "names no endpoint")]
    [InlineData("127.0.0.1:6379,password=hunter2,connectTimeout=soon", "RedisDriverOptions.Configuration", "connectTimeout")]
    [InlineData("127.0.0.1:6379,password=hunter2,noSuchOption=1", "RedisDriverOptions.Configuration", "noSuchOption")]
    public void Validation_BadConfiguration_NamesTheOptionAndNeverTheSecret(string configuration, string option, string reason)
    {
        var failure = Validate(options => options.Configuration = configuration);

        Assert.Contains(option, failure.Message, StringComparison.Ordinal);
        Assert.Contains(reason, failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validation_ConfigurationOptionsWithServiceNameButNoSentinel_NamesTheOption()
    {
        var failure = Validate(options => options.ConfigurationOptions = new ConfigurationOptions { ServiceName = "mymaster", Password = "hunter2" });

        Assert.Contains("RedisDriverOptions.ConfigurationOptions", failure.Message, StringComparison.Ordinal);
        Assert.Contains("no sentinel", failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FirstOperation_NoReachableServer_FailsNamingTheEndpointAndNeverThePassword()
    {
        var logger = new FakeLogger<RedisDriver>();
        var services = new ServiceCollection();
        services.AddSingleton<ILogger<RedisDriver>>(logger);
        services.AddAsmDistributedCache().UseRedisDriver("127.0.0.1:1,password=hunter2,connectTimeout=200");
        await using var provider = services.BuildServiceProvider();

        var failure = await Assert.ThrowsAsync<RedisDriverException>(
            () => provider.GetRequiredService<ICacheDriver>().GetAsync("key", DateTimeOffset.UtcNow, CancellationToken.None).AsTask());

        Assert.Contains("127.0.0.1:1", failure.Message, StringComparison.Ordinal);
        for (Exception? ex = failure; ex is not null; ex = ex.InnerException)
        {
            Assert.DoesNotContain("hunter2", ex.Message, StringComparison.Ordinal);
        }

        Assert.NotEmpty(logger.Collector.GetSnapshot());
        Assert.All(logger.Collector.GetSnapshot(), e => Assert.DoesNotContain("hunter2", e.Message + e.Exception, StringComparison.Ordinal));
    }

    [Fact]
    public async Task AppMultiplexerWithDetailedExceptions_ServerUnreachable_FailureAndLogsNeverNameTheSessionId()
    {
        // The application's own multiplexer keeps the client's default: exception messages carry the command's key.
        var configuration = ConfigurationOptions.Parse("127.0.0.1:1,connectTimeout=200");
        configuration.AbortOnConnectFail = false;
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        Assert.True(configuration.IncludeDetailInExceptions);
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);
        var logger = new FakeLogger<RedisDriver>();
        var services = new ServiceCollection();
        services.AddSingleton<ILogger<RedisDriver>>(logger);
        services.AddAsmDistributedCache().UseRedisDriver(o => o.ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer));
        await using var provider = services.BuildServiceProvider();
        var driver = provider.GetRequiredService<ISessionDriver>();
        var key = SessionKey.New();

        var failure = await Assert.ThrowsAsync<RedisDriverException>(() => SessionSteps.LoadAsync(driver, TimeProvider.System, key));

        Assert.IsType<RedisConnectionException>(failure.InnerException);
        Assert.DoesNotContain(key.Id, failure.ToString(), StringComparison.Ordinal);
        Assert.All(logger.Collector.GetSnapshot(), e => Assert.DoesNotContain(key.Id, e.Message + e.Exception, StringComparison.Ordinal));
    }

    [Fact]
    public async Task WaitForReplicas_NoReplicaAcknowledges_CommitFailsNamingTheOptionAndTheWriteStaysOnTheMaster()
    {
        using var drivers = new RedisTestDrivers(_server.EndPoint);
        var driver = drivers.Create(TimeProvider.System, configure: o =>
        {
            o.WaitForReplicas = 1;
            o.OperationTimeout = TimeSpan.FromSeconds(1);
        });
        var key = SessionKey.New();
        await SessionSteps.LoadAsync(driver, TimeProvider.System, key); // connected first: only the WAIT may time out

        var failure = await Assert.ThrowsAsync<RedisDriverException>(() => driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                CreateWithSecret = key.Secret,
                Now = DateTimeOffset.UtcNow,
                IdleTimeout = SessionSteps.Idle,
                Changes = new Dictionary<string, byte[]?> { ["a"] = [1] },
            },
            CancellationToken.None).AsTask());

        Assert.Contains("RedisDriverOptions.WaitForReplicas", failure.Message, StringComparison.Ordinal);
        Assert.Contains("0 of the 1 replicas", failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(key.Id, failure.Message, StringComparison.Ordinal);
        Assert.Equal(1L, await _server.ExecuteAsync("EXISTS", driver.SessionKeyOf(key.Id)));
    }

    private static OptionsValidationException Validate(Action<RedisDriverOptions> configure)
    {
        var services = new ServiceCollection();
        services.AddAsmDistributedCache().UseRedisDriver(configure);
        using var provider = services.BuildServiceProvider();
        return Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<RedisDriverOptions>>().Value);
    }

    private async Task WaitForSubscribersAsync(string channel, long expected)
    {
        await Eventually.HoldsAsync(
            async () =>
            {
                var reply = (object?[])(await _server.ExecuteAsync("PUBSUB", "NUMSUB", channel))!;
                return (long)reply[1]! == expected;
            },
            RecoveryTimeout,
            $"{expected} subscribers of {channel}",
            NotConnectedYet);
    }
    /// <summary>A command sent while the client reconnects fails, or times out in its backlog: not there yet.</summary>
    private static bool NotConnectedYet(Exception ex) => ex is RedisException or RedisTimeoutException;

    /// <summary>A singleton made before the driver, so the container disposes it after the driver.</summary>
    private sealed class DisposalProbe : IDisposable
    {
        public bool Disposed { get; private set; }

        public void Dispose() => Disposed = true;
    }
}
