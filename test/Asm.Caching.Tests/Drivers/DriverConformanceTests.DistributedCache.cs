using Asm.Caching.Distributed;
using Microsoft.Extensions.Caching.Distributed;

namespace Asm.Caching.Tests.Drivers;

/// <summary><see cref="IDistributedCache"/> over every driver, against the interface's contract as Microsoft's caches keep it.</summary>
public abstract partial class DriverConformanceTests
{
    [Fact]
    public async Task DistributedCache_EmptyValue_ReadsBackEmptyNotMissing()
    {
        var cache = new AsmDistributedCache(Cache, Clock);

        await cache.SetAsync("empty", [], new DistributedCacheEntryOptions(), Token);

        var read = await cache.GetAsync("empty", Token);
        Assert.NotNull(read);
        Assert.Empty(read);
        Assert.Empty(cache.Get("empty") ?? [1]);
    }

    [Fact]
    public async Task DistributedCache_ArraysChangedByTheCaller_LeaveTheStoredValueAsWritten()
    {
        var cache = new AsmDistributedCache(Cache, Clock);
        byte[] written = [1, 2];
        await cache.SetAsync("key", written, new DistributedCacheEntryOptions(), Token);
        written[0] = 9;

        var read = await cache.GetAsync("key", Token);
        read![1] = 9;

        Assert.Equal([1, 2], await cache.GetAsync("key", Token));
    }

    [Fact]
    public async Task DistributedCache_CancelledToken_ThrowsOperationCanceledAndChangesNothing()
    {
        var cache = new AsmDistributedCache(Cache, Clock);
        await cache.SetAsync("key", [1], new DistributedCacheEntryOptions(), Token);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cache.GetAsync("key", cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cache.SetAsync("key", [2], new DistributedCacheEntryOptions(), cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cache.RefreshAsync("key", cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cache.RemoveAsync("key", cancelled.Token));

        Assert.Equal([1], await cache.GetAsync("key", Token));
    }

    [Fact]
    public async Task DistributedCache_RefreshOfAnEntryWithoutSlidingExpiry_KeepsItsAbsoluteExpiry()
    {
        var cache = new AsmDistributedCache(Cache, Clock);
        await cache.SetAsync("key", [1], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(5) }, Token);

        Clock.Advance(TimeSpan.FromMinutes(4));
        await cache.RefreshAsync("key", Token);
        Clock.Advance(TimeSpan.FromMinutes(1));

        Assert.Null(await cache.GetAsync("key", Token));
    }

    [Fact]
    public async Task DistributedCache_SetWithAnExpiryThenWithout_NeverExpires()
    {
        var cache = new AsmDistributedCache(Cache, Clock);
        await cache.SetAsync("key", [1], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(1) }, Token);
        await cache.SetAsync("key", [2], new DistributedCacheEntryOptions(), Token);

        Clock.Advance(TimeSpan.FromDays(400));

        Assert.Equal([2], await cache.GetAsync("key", Token));
    }
}
