using System.Collections.Concurrent;
using System.Reflection;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Records;
using Asm.Caching.Sessions;

namespace Asm.Caching.Tests.Drivers;

public sealed class InMemoryDriverTests : DriverConformanceTests
{
    /// <summary>The in-memory driver keeps no serialized form: the only damage it can suffer is a lost record.</summary>
    protected override SessionLoadStatus CorruptSessionStatus => SessionLoadStatus.Unknown;

    protected override ISessionDriver CreateDriver(TimeProvider timeProvider) => new InMemoryDriver(timeProvider);

    protected override Task CorruptStoredSessionAsync(string sessionId)
    {
        Assert.True(Records.TryRemove(sessionId, out _));
        return Task.CompletedTask;
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
}
