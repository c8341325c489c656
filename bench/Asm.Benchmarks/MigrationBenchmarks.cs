using System.Diagnostics.Metrics;
using Asm.Caching.Distributed;
using Asm.Caching.Drivers.FileSystem;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.SessionAdapter;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Import;
using Asm.SessionAdapter.Migration;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Asm.Benchmarks;

/// <summary>
/// How fast sessions are adopted (docs/migration.md): a stock session imported (<c>ImportStockSessions()</c>: its
/// payload read from the stock <c>IDistributedCache</c>, the Asm record stored, the stock entry removed), and an Asm
/// session moved between drivers (<c>MigrateFrom</c>: locked and exported from the previous driver, imported into the
/// new one, the previous copy ended). Each iteration adopts <see cref="Sessions"/> sessions that the iteration's setup
/// wrote (the stock ones by the stock <c>DistributedSession</c> itself), one at a time or <see cref="Concurrency"/> at
/// once; the mean is per session, so sessions per second is its inverse. Redis runs when REDIS names a server.
/// </summary>
[InvocationCount(1)]
public class MigrationBenchmarks
{
    private const int Sessions = 200;
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(20);

    private readonly List<Action> _cleanup = [];
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private ISessionDriver _target = null!;
    private ISessionDriver _previous = null!;
    private IDistributedCache _stockCache = null!;
    private StockSessionImporter _importer = null!;
    private MigratingSessionDriver _mover = null!;
    private string[] _work = [];

    /// <summary>Import: the driver both the stock cache and Asm use. Move: the previous driver, then the new one.</summary>
    [ParamsSource(nameof(Cases))]
    public string Case { get; set; } = "Import InMemory";

    [Params(1, 16)]
    public int Concurrency { get; set; }

    public static IEnumerable<string> Cases()
    {
        yield return "Import InMemory";
        yield return "Import FileSystem";
        yield return "Move InMemory>FileSystem";
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("REDIS")))
        {
            yield return "Import Redis";
            yield return "Move FileSystem>Redis";
            yield return "Move Redis>Redis";
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        var metrics = new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>());
        var parts = Case.Split(' ', '>');
        _target = Create(parts[^1], "new");
        if (parts[0] == "Import")
        {
            _stockCache = new AsmDistributedCache((Caching.Caching.ICacheDriver)_target, TimeProvider.System);
            _importer = new StockSessionImporter(_stockCache, TimeProvider.System, metrics, NullLogger<StockSessionImporter>.Instance);
        }
        else
        {
            _previous = Create(parts[1], "old");
            _mover = new MigratingSessionDriver(_target, _previous, TimeProvider.System, metrics, NullLogger.Instance, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(1));
        }
    }

    [IterationSetup]
    public void Seed()
    {
        _work = new string[Sessions];
        for (var i = 0; i < Sessions; i++)
        {
            if (_importer is not null)
            {
                // Written by the stock session itself, as the app did before the swap.
                var stockKey = Guid.NewGuid().ToString();
                var stock = new DistributedSession(_stockCache, stockKey, IdleTimeout, TimeSpan.FromMinutes(1), () => true, NullLoggerFactory.Instance, isNewSessionKey: true);
                foreach (var (name, value) in SeedData.Values())
                {
                    stock.Set(name, value!);
                }

                stock.CommitAsync().GetAwaiter().GetResult();
                _work[i] = stockKey;
            }
            else
            {
                var key = SessionKey.New();
                _previous.CommitAsync(SeedData.CreateRequest(key, TimeProvider.System.GetUtcNow(), IdleTimeout), default).AsTask().GetAwaiter().GetResult();
                _work[i] = key.Id;
            }
        }
    }

    [Benchmark(OperationsPerInvoke = Sessions)]
    public Task Adopt() => Parallel.ForEachAsync(_work, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (item, ct) =>
    {
        if (_importer is not null)
        {
            var options = new AsmSessionOptions();
            var reason = await _importer.ImportAsync(_target, options, item, StockSessionImporter.MapKey(item), SeedData.Profile, ct);
            if (reason is not null)
            {
                throw new InvalidOperationException($"Import failed: {reason}.");
            }
        }
        else if (await _mover.MoveAsync(item, waitIfBusy: false, ct) != SessionLoadStatus.Found)
        {
            throw new InvalidOperationException("Move failed.");
        }
    });

    [GlobalCleanup]
    public void Cleanup()
    {
        _cleanup.ForEach(a => a());
        _metrics.Dispose();
    }

    private ISessionDriver Create(string driver, string name)
    {
        switch (driver)
        {
            case "InMemory":
                return new InMemoryDriver(TimeProvider.System);
            case "FileSystem":
                var directory = Path.Combine(Path.GetTempPath(), $"asm-bench-{name}-{Guid.NewGuid():N}");
                _cleanup.Add(() => Directory.Delete(directory, recursive: true));
                return new FileSystemDriver(
                    Options.Create(new FileSystemDriverOptions { Directory = directory }), TimeProvider.System, NullLogger<FileSystemDriver>.Instance);
            default:
                var redis = new RedisDriver(
                    Options.Create(new RedisDriverOptions { Configuration = Environment.GetEnvironmentVariable("REDIS"), InstanceName = $"asm-bench-{name}-{Guid.NewGuid():N}:" }),
                    TimeProvider.System,
                    NullLogger<RedisDriver>.Instance);
                _cleanup.Add(redis.Dispose);
                return redis;
        }
    }
}
