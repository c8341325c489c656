using Microsoft.Extensions.Caching.Distributed;
using StackExchange.Redis;

namespace Asm.Benchmarks.App;

/// <summary>
/// The floor rows' storage: an <see cref="IDistributedCache"/> that costs Redis as little as anything can. A read is
/// one <c>GET</c>, a write one <c>SET ... PX</c>, a refresh nothing at all, so under the stock <c>AddSession()</c> a
/// reading request makes one round trip of the cheapest command and a read-modify-write two: the fewest any Redis
/// session makes that checks a key on every request and writes on every change. It slides no expiry, locks nothing and
/// checks nothing, so it is no session store to run; it measures how fast this machine lets any such session go.
/// </summary>
internal sealed class FloorRedisCache(string configuration) : IDistributedCache
{
    private static readonly TimeSpan DefaultExpiry = TimeSpan.FromMinutes(20);
    private readonly Lazy<IDatabase> _database = new(() => ConnectionMultiplexer.Connect(configuration).GetDatabase());

    public byte[]? Get(string key) => _database.Value.StringGet(key);

    public async Task<byte[]?> GetAsync(string key, CancellationToken token = default) =>
        await _database.Value.StringGetAsync(key).ConfigureAwait(false);

    public void Set(string key, byte[] value, DistributedCacheEntryOptions options) =>
        _database.Value.StringSet(key, value, ExpiryOf(options));

    public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default) =>
        _database.Value.StringSetAsync(key, value, ExpiryOf(options));

    public void Refresh(string key)
    {
    }

    public Task RefreshAsync(string key, CancellationToken token = default) => Task.CompletedTask;

    public void Remove(string key) => _database.Value.KeyDelete(key);

    public Task RemoveAsync(string key, CancellationToken token = default) => _database.Value.KeyDeleteAsync(key);

    private static TimeSpan ExpiryOf(DistributedCacheEntryOptions options) =>
        options.SlidingExpiration ?? options.AbsoluteExpirationRelativeToNow ?? DefaultExpiry;
}
