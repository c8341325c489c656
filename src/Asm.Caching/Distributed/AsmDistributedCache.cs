using Asm.Caching.Caching;
using Microsoft.Extensions.Caching.Distributed;

namespace Asm.Caching.Distributed;

/// <summary>
/// <see cref="IDistributedCache"/> over any Asm driver. Absolute, relative and sliding expirations are enforced with
/// the application's <see cref="TimeProvider"/>. The synchronous members block on the asynchronous ones, as the
/// interface forces.
/// </summary>
internal sealed class AsmDistributedCache(ICacheDriver driver, TimeProvider timeProvider) : IDistributedCache
{
    public byte[]? Get(string key) => GetAsync(key).GetAwaiter().GetResult();

    public async Task<byte[]?> GetAsync(string key, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        return await driver.GetAsync(key, timeProvider.GetUtcNow(), token).ConfigureAwait(false);
    }

    public void Set(string key, byte[] value, DistributedCacheEntryOptions options) =>
        SetAsync(key, value, options).GetAwaiter().GetResult();

    public async Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(options);
        var now = timeProvider.GetUtcNow();
        var absolute = options.AbsoluteExpiration;
        if (options.AbsoluteExpirationRelativeToNow is { } relative)
        {
            absolute = now + relative;
        }

        if (absolute <= now)
        {
            throw new ArgumentOutOfRangeException(nameof(options), absolute, "The absolute expiration value must be in the future.");
        }

        await driver.SetAsync(key, value, new CacheEntryExpiration(now, absolute, options.SlidingExpiration), token).ConfigureAwait(false);
    }

    public void Refresh(string key) => RefreshAsync(key).GetAwaiter().GetResult();

    public async Task RefreshAsync(string key, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        await driver.RefreshAsync(key, timeProvider.GetUtcNow(), token).ConfigureAwait(false);
    }

    public void Remove(string key) => RemoveAsync(key).GetAwaiter().GetResult();

    public async Task RemoveAsync(string key, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        await driver.RemoveAsync(key, token).ConfigureAwait(false);
    }
}
