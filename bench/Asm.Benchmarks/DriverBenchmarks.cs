using Asm.Caching.Caching;
using Asm.Caching.Drivers.FileSystem;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Asm.Benchmarks;

/// <summary>
/// The storage operations one request makes, driver by driver: a load (ReadOnly and Lockless requests), a lockless
/// commit of one changed value, the Exclusive read-modify-write (load with a lease, then commit and release), and the
/// lock fast path alone (an uncontended lease acquired with the load, then released). For comparison, what the stock
/// session costs over the same driver's <c>IDistributedCache</c>: a read (which slides the entry) and a write of the
/// serialized session.
/// </summary>
/// <remarks>
/// The session holds what the load-test app seeds: four values, about 250 bytes. <c>FileSystemDurable</c> is the
/// filesystem driver with <see cref="FileSystemDriverOptions.Durable"/>, which fsyncs every write (its directory is
/// in the temporary folder, so put that on the disk to measure with <c>TMPDIR</c>). Redis runs only when the REDIS
/// environment variable names a server (HOST:PORT); its numbers are one request at a time, so they are round trips.
/// </remarks>
[MemoryDiagnoser]
public class DriverBenchmarks
{
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(20);
    private static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(30);

    private ISessionDriver _driver = null!;
    private RedisDriver? _redis;
    private string? _directory;
    private const string CacheKey = "bench-stock-session";

    private SessionKey _key;
    private Dictionary<string, byte[]?> _change = null!;
    private ICacheDriver _cache = null!;
    private byte[] _serializedSession = null!;

    [ParamsSource(nameof(Drivers))]
    public string Driver { get; set; } = "InMemory";

    public static IEnumerable<string> Drivers()
    {
        yield return "InMemory";
        yield return "FileSystem";
        yield return "FileSystemDurable";
        if (!string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("REDIS")))
        {
            yield return "Redis";
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        switch (Driver)
        {
            case "InMemory":
                _driver = new InMemoryDriver(TimeProvider.System);
                break;
            case "FileSystem" or "FileSystemDurable":
                _directory = Path.Combine(Path.GetTempPath(), "asm-bench-" + Guid.NewGuid().ToString("N"));
                _driver = new FileSystemDriver(
                    Options.Create(new FileSystemDriverOptions { Directory = _directory, Durable = Driver == "FileSystemDurable" }),
                    TimeProvider.System,
                    NullLogger<FileSystemDriver>.Instance);
                break;
            case "Redis":
                var redis = new RedisDriver(
                    Options.Create(new RedisDriverOptions
                    {
                        Configuration = Environment.GetEnvironmentVariable("REDIS"),
                        InstanceName = "asm-bench:",
                    }),
                    TimeProvider.System,
                    NullLogger<RedisDriver>.Instance);
                _driver = redis;
                _redis = redis;
                break;
            default:
                throw new InvalidOperationException($"Unknown driver {Driver}.");
        }

        _cache = (ICacheDriver)_driver;
        _key = SessionKey.New();
        _change = new Dictionary<string, byte[]?>(StringComparer.Ordinal) { ["counter"] = [0, 0, 0, 1] };
        var status = _driver.CommitAsync(SeedData.CreateRequest(_key, TimeProvider.System.GetUtcNow(), IdleTimeout), default)
            .AsTask().GetAwaiter().GetResult();
        if (status != SessionCommitStatus.Committed)
        {
            throw new InvalidOperationException($"Seeding the {Driver} driver failed: {status}.");
        }

        // The stock session stores its values serialized in one entry: about the same bytes plus a small header.
        _serializedSession = new byte[300];
        _cache.SetAsync(CacheKey, _serializedSession, SlidingExpiration(), default).AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _redis?.Dispose();
        if (_directory is not null && Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>ReadOnly and Lockless requests: one load, which also slides the idle expiry.</summary>
    [Benchmark]
    public ValueTask<SessionLoadResult> Load() =>
        _driver.LoadAsync(new SessionLoadRequest { Key = _key, Now = TimeProvider.System.GetUtcNow(), IdleTimeout = IdleTimeout }, default);

    /// <summary>A Lockless request's write: one changed value merged into the stored session.</summary>
    [Benchmark]
    public ValueTask<SessionCommitStatus> CommitDelta() =>
        _driver.CommitAsync(
            new SessionCommitRequest { SessionId = _key.Id, Now = TimeProvider.System.GetUtcNow(), IdleTimeout = IdleTimeout, Changes = _change },
            default);

    /// <summary>An Exclusive read-modify-write: load with a lease, then commit one value and release.</summary>
    [Benchmark]
    public async ValueTask<SessionCommitStatus> ExclusiveReadModifyWrite()
    {
        var loaded = await _driver.LoadAsync(
            new SessionLoadRequest
            {
                Key = _key,
                Now = TimeProvider.System.GetUtcNow(),
                IdleTimeout = IdleTimeout,
                Lease = SessionLease.Create(LeaseDuration),
            },
            default);
        return await _driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = _key.Id,
                Now = TimeProvider.System.GetUtcNow(),
                IdleTimeout = IdleTimeout,
                Lease = loaded.Lease,
                ReleaseLock = true,
                Changes = _change,
            },
            default);
    }

    /// <summary>The stock session's load over this driver's cache: read the entry and slide it.</summary>
    [Benchmark]
    public ValueTask<byte[]?> StockCacheGet() => _cache.GetAsync(CacheKey, TimeProvider.System.GetUtcNow(), default);

    /// <summary>The stock session's commit of a change over this driver's cache: write the whole entry.</summary>
    [Benchmark]
    public ValueTask StockCacheSet() => _cache.SetAsync(CacheKey, _serializedSession, SlidingExpiration(), default);

    private static CacheEntryExpiration SlidingExpiration() => new(TimeProvider.System.GetUtcNow(), null, IdleTimeout);

    /// <summary>The lock fast path: an uncontended lease acquired with the load, then released without a write.</summary>
    [Benchmark]
    public async ValueTask AcquireRelease()
    {
        var loaded = await _driver.LoadAsync(
            new SessionLoadRequest
            {
                Key = _key,
                Now = TimeProvider.System.GetUtcNow(),
                IdleTimeout = IdleTimeout,
                Lease = SessionLease.Create(LeaseDuration),
            },
            default);
        await _driver.ReleaseLockAsync(_key.Id, loaded.Lease!, default);
    }
}
