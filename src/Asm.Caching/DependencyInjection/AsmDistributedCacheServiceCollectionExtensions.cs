using Asm.Caching.Distributed;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Asm's <see cref="IDistributedCache"/>.</summary>
public static class AsmDistributedCacheServiceCollectionExtensions
{
    /// <summary>
    /// Registers an <see cref="IDistributedCache"/> over an Asm driver (in-memory unless the returned builder
    /// chooses another), for use on its own, for example under the stock <c>AddSession()</c>.
    /// </summary>
    public static IAsmStorageBuilder AddAsmDistributedCache(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddAsmStorageCore();
        services.Replace(ServiceDescriptor.Singleton<IDistributedCache, AsmDistributedCache>());
        return new AsmStorageBuilder(services);
    }
}
