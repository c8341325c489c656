using Asm.SessionAdapter;

namespace Asm.Benchmarks.App;

/// <summary>The session providers the app can run with, one per process.</summary>
internal enum SessionProvider
{
    /// <summary>No session middleware at all: the ceiling.</summary>
    None,

    /// <summary>The stock <c>AddSession()</c> over <c>AddDistributedMemoryCache()</c>.</summary>
    StockMemory,

    /// <summary>The stock <c>AddSession()</c> over Asm's Redis <c>IDistributedCache</c>.</summary>
    StockRedis,

    /// <summary>
    /// The stock <c>AddSession()</c> over Microsoft's <c>AddStackExchangeRedisCache()</c>
    /// (Microsoft.Extensions.Caching.StackExchangeRedis): what most apps run today.
    /// </summary>
    StockMicrosoftRedis,

    /// <summary>
    /// Asm over <see cref="FloorSessionDriver"/>: one plain <c>HGETALL</c> per load, one <c>HSET</c> per commit, no
    /// check and no lock. The least an Asm session over Redis can cost on this machine; no store to run.
    /// </summary>
    FloorRedis,

    /// <summary>
    /// As <see cref="FloorRedis"/>, with each commit the least write that keeps a lockless commit's promises: one
    /// script that refuses an ended session and slides its idle expiry.
    /// </summary>
    FloorRedisChecked,

    /// <summary>Asm with the in-memory driver.</summary>
    AsmMemory,

    /// <summary>Asm with the filesystem driver.</summary>
    AsmFileSystem,

    /// <summary>Asm with the Redis driver.</summary>
    AsmRedis,
}

/// <summary>
/// What one run of the app serves, from the command line:
/// <c>--provider none|stock-memory|stock-redis|stock-msredis|floor-redis|floor-redis-checked|asm-memory|asm-fs|asm-redis</c>, <c>--redis HOST:PORT</c> (Redis
/// providers and <c>/redis/ping</c>), <c>--dir PATH</c> (asm-fs), <c>--lock-mode exclusive|lockonwrite|lockless|readonly</c>
/// (the mode of <c>/read</c> and <c>/write</c>; default Exclusive), <c>--port N</c> (default 0: a free port),
/// <c>--load-cancellation true</c> (handlers pass <c>RequestAborted</c> to <c>LoadAsync</c>; default false).
/// </summary>
internal sealed record BenchSettings(
    SessionProvider Provider, string? Redis, string? Directory, SessionLockMode DefaultLockMode, int Port, bool LoadCancellation)
{
    public static BenchSettings From(IConfiguration configuration)
    {
        var provider = (configuration["provider"] ?? "asm-memory") switch
        {
            "none" => SessionProvider.None,
            "stock-memory" => SessionProvider.StockMemory,
            "stock-redis" => SessionProvider.StockRedis,
            "stock-msredis" => SessionProvider.StockMicrosoftRedis,
            "floor-redis" => SessionProvider.FloorRedis,
            "floor-redis-checked" => SessionProvider.FloorRedisChecked,
            "asm-memory" => SessionProvider.AsmMemory,
            "asm-fs" => SessionProvider.AsmFileSystem,
            "asm-redis" => SessionProvider.AsmRedis,
            var other => throw new ArgumentException(
                $"--provider '{other}' is not one of none, stock-memory, stock-redis, stock-msredis, floor-redis, floor-redis-checked, asm-memory, asm-fs, asm-redis."),
        };

        var redis = configuration["redis"];
        if (provider is SessionProvider.StockRedis or SessionProvider.StockMicrosoftRedis or SessionProvider.FloorRedis or SessionProvider.FloorRedisChecked or SessionProvider.AsmRedis
            && string.IsNullOrWhiteSpace(redis))
        {
            throw new ArgumentException("--redis HOST:PORT is required for the Redis providers.");
        }

        var directory = configuration["dir"];
        if (provider == SessionProvider.AsmFileSystem && string.IsNullOrWhiteSpace(directory))
        {
            throw new ArgumentException("--dir PATH is required for the asm-fs provider.");
        }

        var lockMode = configuration["lock-mode"] is { } mode
            ? Enum.Parse<SessionLockMode>(mode, ignoreCase: true)
            : SessionLockMode.Exclusive;
        return new BenchSettings(
            provider, redis, directory, lockMode, configuration.GetValue("port", 0), configuration.GetValue("load-cancellation", false));
    }
}
