using Asm.Caching;
using Asm.Caching.Caching;
using Asm.Caching.Drivers.FileSystem;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Sessions;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Driver choice on an Asm builder.</summary>
public static class AsmStorageBuilderExtensions
{
    /// <summary>Keeps sessions in this process's memory (the default when no driver is chosen).</summary>
    public static TBuilder UseInMemoryDriver<TBuilder>(this TBuilder builder)
        where TBuilder : IAsmStorageBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton<InMemoryDriver>();
        return builder.UseDriver<TBuilder, InMemoryDriver>();
    }

    /// <summary>Keeps sessions in this process's memory, configured by <paramref name="configure"/> (its size limit).</summary>
    public static TBuilder UseInMemoryDriver<TBuilder>(this TBuilder builder, Action<InMemoryDriverOptions> configure)
        where TBuilder : IAsmStorageBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.Configure(configure);
        return builder.UseInMemoryDriver();
    }

    /// <summary>
    /// Keeps sessions as files in <paramref name="directory"/>, which several processes on one machine may share.
    /// </summary>
    public static TBuilder UseFileSystemDriver<TBuilder>(this TBuilder builder, string directory)
        where TBuilder : IAsmStorageBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        return builder.UseFileSystemDriver(options => options.Directory = directory);
    }

    /// <summary>Keeps sessions as files, configured by <paramref name="configure"/>.</summary>
    public static TBuilder UseFileSystemDriver<TBuilder>(this TBuilder builder, Action<FileSystemDriverOptions> configure)
        where TBuilder : IAsmStorageBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.AddOptions<FileSystemDriverOptions>().Configure(configure).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<FileSystemDriver>();
        return builder.UseDriver<TBuilder, FileSystemDriver>();
    }

    /// <summary>
    /// Makes <typeparamref name="TDriver"/> (registered by the caller) the driver of sessions and of the cache,
    /// replacing any earlier choice.
    /// </summary>
    internal static TBuilder UseDriver<TBuilder, TDriver>(this TBuilder builder)
        where TBuilder : IAsmStorageBuilder
        where TDriver : class, ISessionDriver, ICacheDriver
    {
        var services = builder.Services;
        services.Replace(ServiceDescriptor.Singleton<ISessionDriver>(sp => sp.GetRequiredService<TDriver>()));
        services.Replace(ServiceDescriptor.Singleton<ICacheDriver>(sp => sp.GetRequiredService<TDriver>()));
        return builder;
    }

    /// <summary>Registers what every driver choice shares: the clock, the default driver and the sweeper.</summary>
    internal static void AddAsmStorageCore(this IServiceCollection services)
    {
        services.AddOptions();
        services.AddLogging();
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<InMemoryDriverOptions>().ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton<InMemoryDriver>();
        services.TryAddSingleton<ISessionDriver>(sp => sp.GetRequiredService<InMemoryDriver>());
        services.TryAddSingleton<ICacheDriver>(sp => sp.GetRequiredService<InMemoryDriver>());
        services.AddOptions<SweepOptions>().ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, DriverSweeper>());
    }
}
