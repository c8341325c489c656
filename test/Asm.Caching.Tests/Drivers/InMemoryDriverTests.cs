using System.Collections.Concurrent;
using System.Reflection;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Records;
using Asm.Caching.Sessions;
using Microsoft.Extensions.Options;

namespace Asm.Caching.Tests.Drivers;

public sealed class InMemoryDriverTests : DriverConformanceTests
{
    protected override ISessionDriver CreateDriver(TimeProvider timeProvider) => new InMemoryDriver(timeProvider);

    [Fact]
    public async Task CommitAsync_NewSessionPastSizeLimit_RefusedWhileLiveSessionsKeepWorking()
    {
        var driver = Limited(3);
        var first = await CreateSessionThroughAsync(driver, new() { ["a"] = [1] });
        await CreateSessionThroughAsync(driver);
        await driver.SetAsync("entry", [1], Never(), Token);

        var refused = await Assert.ThrowsAsync<StorageFullException>(() => CreateSessionThroughAsync(driver));

        Assert.Contains("InMemoryDriverOptions.SizeLimit", refused.Message, StringComparison.Ordinal);
        Assert.Equal(3, driver.Count);
        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(driver, first, new() { ["a"] = [2] }));
        Assert.Equal([2], (await LoadAsync(driver, first)).Values["a"]);
    }

    [Fact]
    public async Task SetAsync_NewEntryPastSizeLimit_RefusedButExistingEntryIsUpdated()
    {
        var driver = Limited(1);
        await driver.SetAsync("kept", [1], Never(), Token);

        await Assert.ThrowsAsync<StorageFullException>(async () => await driver.SetAsync("new", [2], Never(), Token));
        await driver.SetAsync("kept", [3], Never(), Token);

        Assert.Equal([3], await driver.GetAsync("kept", Clock.GetUtcNow(), Token));
        Assert.Null(await driver.GetAsync("new", Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task CommitAsync_FullOfExpiredSessions_SweepsThemToMakeRoom()
    {
        var driver = Limited(2);
        await CreateSessionThroughAsync(driver);
        await CreateSessionThroughAsync(driver);

        Clock.Advance(Idle * 3);
        var fresh = await CreateSessionThroughAsync(driver);

        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(driver, fresh)).Status);
        Assert.Equal(1, driver.Count);
    }

    [Fact]
    public async Task Count_AfterRemovesDestroysAndSweeps_TracksTheRecordsKept()
    {
        var driver = Limited(10);
        var key = await CreateSessionThroughAsync(driver);
        await driver.SetAsync("a", [1], Never(), Token);
        await driver.SetAsync("a", [2], Never(), Token);
        await driver.SetAsync("b", [1], Never(), Token);
        await driver.RemoveAsync("b", Token);
        await driver.DestroyAsync("never-created", Clock.GetUtcNow(), Clock.GetUtcNow() + Idle, Token);
        Assert.Equal(3, driver.Count);

        await driver.DestroyAsync(key.Id, Clock.GetUtcNow(), Clock.GetUtcNow() + Idle, Token);
        Clock.Advance(Idle * 3);
        await driver.SweepAsync(Clock.GetUtcNow(), Token);

        Assert.Equal(1, driver.Count);
    }

    [Fact]
    public async Task Count_TwoRequestsDestroyingOneUnknownSessionAtOnce_CountOneRecord()
    {
        // Two threads destroy the same new id at the same moment, round after round: the record is added once, so
        // it must be counted once (a count that drifts up fills the store with records that are not there).
        var driver = Limited(1_000_000);
        var ids = Enumerable.Range(0, 20_000).Select(_ => SessionKey.New().Id).ToArray();
        using var together = new Barrier(2);
        var threads = Enumerable.Range(0, 2).Select(_ => Task.Factory.StartNew(
            () =>
            {
                foreach (var id in ids)
                {
                    together.SignalAndWait(Token);
                    driver.DestroyAsync(id, Clock.GetUtcNow(), Clock.GetUtcNow() + Idle, Token).AsTask().GetAwaiter().GetResult();
                }
            },
            Token,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default));

        await Task.WhenAll(threads);

        Assert.Equal(ids.Length, driver.Count);
    }

    protected override Task ReplaceLockTokenAsync(string sessionId, string token)
    {
        var record = Records[sessionId];
        lock (record)
        {
            record.LockToken = token;
        }

        return Task.CompletedTask;
    }

    private ConcurrentDictionary<string, SessionRecord> Records =>
        (ConcurrentDictionary<string, SessionRecord>)typeof(InMemoryDriver)
            .GetField("_sessions", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(Sessions)!;

    private InMemoryDriver Limited(int sizeLimit) =>
        new(Clock, Options.Create(new InMemoryDriverOptions { SizeLimit = sizeLimit }));
}
