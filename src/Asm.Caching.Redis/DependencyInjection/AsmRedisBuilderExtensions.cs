using Asm.Caching.Drivers.Redis;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Chooses the Redis driver on an Asm builder.</summary>
public static class AsmRedisBuilderExtensions
{
    /// <summary>
    /// Keeps sessions (and cache entries) in Redis or a Redis Cluster at <paramref name="configuration"/>, a
    /// StackExchange.Redis configuration string such as <c>"127.0.0.1:6379"</c>.
    /// </summary>
    public static TBuilder UseRedisDriver<TBuilder>(this TBuilder builder, string configuration)
        where TBuilder : IAsmStorageBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        return builder.UseRedisDriver(options => options.Configuration = configuration);
    }

    /// <summary>Keeps sessions (and cache entries) in Redis, configured by <paramref name="configure"/>.</summary>
    public static TBuilder UseRedisDriver<TBuilder>(this TBuilder builder, Action<RedisDriverOptions> configure)
        where TBuilder : IAsmStorageBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.AddOptions<RedisDriverOptions>().Configure(configure).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RedisDriverOptions>, RedisDriverOptionsValidator>());
        builder.Services.TryAddSingleton<RedisDriver>();
        return builder.UseDriver<TBuilder, RedisDriver>();
    }
}
