using Asm.Caching.Distributed;
using Asm.Caching.Sessions;
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

    [Fact]
    public async Task DistributedCache_SlidingPeriodPastTheCalendarsEnd_IsBoundedByTheAbsoluteExpiry()
    {
        // MemoryDistributedCache and the Redis cache take TimeSpan.MaxValue as a sliding period ("slide forever").
        var cache = new AsmDistributedCache(Cache, Clock);
        await cache.SetAsync("bounded", [1], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.MaxValue, AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) }, Token);
        await cache.SetAsync("endless", [2], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.MaxValue }, Token);

        Clock.Advance(TimeSpan.FromMinutes(59));
        Assert.Equal([1], await cache.GetAsync("bounded", Token));
        await cache.RefreshAsync("endless", Token);
        Clock.Advance(TimeSpan.FromMinutes(2));

        Assert.Null(await cache.GetAsync("bounded", Token));
        Clock.Advance(TimeSpan.FromDays(400));
        Assert.Equal([2], await cache.GetAsync("endless", Token));
        Assert.Equal([2], await cache.GetAsync("endless", Token));
    }

    [Fact]
    public async Task DistributedCache_AbsoluteExpiryAtTheCalendarsEnd_NeverExpires()
    {
        var cache = new AsmDistributedCache(Cache, Clock);
        await cache.SetAsync("key", [1], new DistributedCacheEntryOptions { AbsoluteExpiration = DateTimeOffset.MaxValue, SlidingExpiration = TimeSpan.FromDays(1000) }, Token);

        Clock.Advance(TimeSpan.FromDays(400));

        Assert.Equal([1], await cache.GetAsync("key", Token));
        await cache.RefreshAsync("key", Token);
        Assert.Equal([1], await cache.GetAsync("key", Token));
    }

    [Fact]
    public async Task DistributedCache_KeysThatSpellASessionsStorage_NeverReachTheSessionItsLockItsUserOrItsEndCheck()
    {
        // An app caching under keys built from request input: the names the driver gives a session's record, lock,
        // waiter mark, user index and end check (as stored, and as every driver's layout spells them), the session's
        // id and key, Cluster hash tags around them, path tricks and protocol line breaks, each as a cache key.
        var tracking = (ISessionTrackingDriver)Sessions;
        var created = await CreateSessionAsync(new() { ["cart"] = [7] });
        var key = await BindUserAsync(created, "ada");
        await tracking.AddToUserIndexAsync("ada", key.Id, Token);
        await tracking.ScheduleEndCheckAsync(key.Id, Clock.GetUtcNow() + TimeSpan.FromHours(1), Token);
        var lease = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;
        var id = key.Id;
        var spelled = new List<string>(StorageNames(key.Id, "ada"))
        {
            id, key.Value, created.Value, "{" + id + "}", "s:{" + id + "}", "w:{" + id + "}", "asm:s:{" + id + "}", "asm:w:{" + id + "}",
            "s:{" + id + "}\r\nDEL asm:s:{" + id + "}", "../s:{" + id + "}", "e:{0}", "asm:e:{f}", "u:{ada}", "asm:released",
            ".users", ".ends/" + id + ".end", ".locks/00.lock", "c:" + id, "c#" + id, "{", "}", "{}", "}{",
        };
        var names = spelled.Distinct(StringComparer.Ordinal).ToList();
        Assert.True(names.Count > 20);

        for (var i = 0; i < names.Count; i++)
        {
            await Cache.SetAsync(names[i], BitConverter.GetBytes(i), Never(), Token);
            await Cache.RefreshAsync(names[i], Clock.GetUtcNow(), Token);
        }

        for (var i = 0; i < names.Count; i++)
        {
            Assert.Equal(i, BitConverter.ToInt32(await Cache.GetAsync(names[i], Clock.GetUtcNow(), Token)));
            await Cache.RemoveAsync(names[i], Token);
            Assert.Null(await Cache.GetAsync(names[i], Clock.GetUtcNow(), Token));
        }

        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Status);
        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(key, new() { ["more"] = [8] }, lease, releaseLock: true));
        var loaded = await LoadAsync(key);
        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal([7], loaded.Values["cart"]);
        Assert.Equal("ada", loaded.UserId);
        Assert.Equal([id], await tracking.GetUserIndexAsync("ada", Token));
        Assert.True(await tracking.ClaimEndCheckAsync(id, Token));
    }
}
