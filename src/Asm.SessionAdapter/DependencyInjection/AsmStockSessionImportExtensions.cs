using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Import;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adopts the live sessions of ASP.NET Core's stock session store when Asm replaces it.</summary>
public static class AsmStockSessionImportExtensions
{
    /// <summary>
    /// Imports sessions of the stock <c>AddSession()</c> store on first use: a request whose cookie carries a stock
    /// session key gets an Asm session with the same values (read from the <see cref="IDistributedCache"/> registered in
    /// the container), the Asm cookie, and the stock entry removed. Each stock session is imported once, even under
    /// parallel requests. A stock key without a payload is <c>Unknown</c>, an unreadable payload <c>Corrupt</c>, as
    /// for any invalid cookie.
    /// </summary>
    /// <param name="builder">The Asm session builder.</param>
    /// <returns>The builder.</returns>
    public static IAsmSessionBuilder ImportStockSessions(this IAsmSessionBuilder builder) =>
        builder.ImportStockSessions(services => services.GetRequiredService<IDistributedCache>());

    /// <summary>
    /// Imports sessions of the stock <c>AddSession()</c> store on first use, reading them from the cache
    /// <paramref name="stockCache"/> returns: for applications whose registered <see cref="IDistributedCache"/> is no
    /// longer the one the stock sessions are in.
    /// </summary>
    /// <param name="builder">The Asm session builder.</param>
    /// <param name="stockCache">Returns the cache the stock session store wrote to.</param>
    /// <returns>The builder.</returns>
    public static IAsmSessionBuilder ImportStockSessions(this IAsmSessionBuilder builder, Func<IServiceProvider, IDistributedCache> stockCache)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(stockCache);
        builder.Services.Replace(ServiceDescriptor.Singleton(services => new StockSessionImporter(
            stockCache(services),
            services.GetRequiredService<TimeProvider>(),
            services.GetRequiredService<AsmSessionMetrics>(),
            services.GetRequiredService<ILogger<StockSessionImporter>>())));
        return builder;
    }
}
