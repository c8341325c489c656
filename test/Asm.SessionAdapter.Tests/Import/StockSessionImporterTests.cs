using System.Diagnostics.Metrics;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Import;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.Import;

/// <summary>What the import stores, read back from the driver.</summary>
public sealed class StockSessionImporterTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();

    /// <summary>
    /// Whoever holds a stock key can compute the key it maps to, so that one is only a zombie with a short window; the
    /// session's own secret must be one nobody can compute from the stock key, or the stock key would open the session
    /// for as long as it is not regenerated.
    /// </summary>
    [Fact]
    public async Task ImportOfOneStockKey_TwiceOnTwoStores_GivesTheSessionsUnrelatedRandomSecrets()
    {
        var stockKey = Guid.NewGuid().ToString();
        var mapped = StockSessionImporter.MapKey(stockKey);

        var first = await ImportAndExportAsync(stockKey, mapped);
        var second = await ImportAndExportAsync(stockKey, mapped);

        Assert.NotEqual(first.Secret, second.Secret);
        Assert.NotEqual(mapped.Secret, first.Secret);
        Assert.Equal(mapped.Secret, Assert.Single(first.Zombies).Secret);
    }

    public void Dispose() => _metrics.Dispose();

    private async Task<SessionSnapshot> ImportAndExportAsync(string stockKey, SessionKey mapped)
    {
        var cache = new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions()));
        await cache.SetAsync(stockKey, StockSessionImportTests.StockPayload(("user", "alice"u8.ToArray())));
        var importer = new StockSessionImporter(cache, _time, new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>()), NullLogger<StockSessionImporter>.Instance);
        var driver = new InMemoryDriver(_time);

        Assert.Null(await importer.ImportAsync(driver, new AsmSessionOptions(), stockKey, mapped, profile: null, CancellationToken.None));

        var export = await driver.ExportAsync(mapped.Id, SessionLease.Create(TimeSpan.FromSeconds(30)), _time.GetUtcNow(), CancellationToken.None);
        return export.Snapshot!;
    }
}
