using Asm.Caching.Sessions;

namespace Asm.Caching.Tests.Drivers;

/// <summary>
/// The conformance suite plus what a driver that stores a serialized form (a file, a Redis hash) owes when that form
/// is damaged at rest. The in-memory driver keeps objects, which nothing outside the process can damage.
/// </summary>
public abstract class StoredDriverConformanceTests : DriverConformanceTests
{
    /// <summary>Damages the stored record of <paramref name="sessionId"/> in the driver's real storage.</summary>
    protected abstract Task CorruptStoredSessionAsync(string sessionId);

    [Fact]
    public async Task LoadAsync_CorruptStoredRecord_ReturnsCorruptStatusWithoutThrowing()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });

        await CorruptStoredSessionAsync(key.Id);

        Assert.Equal(SessionLoadStatus.Corrupt, (await LoadAsync(key)).Status);
        Assert.Equal(SessionLoadStatus.Corrupt, (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Status);
        Assert.Equal(SessionCommitStatus.NotFound, await CommitAsync(key, new() { ["a"] = [2] }));
        Assert.Equal(SessionCommitStatus.NotFound, await RegenerateAsync(key, key.WithNewSecret()));
        Assert.Equal(SessionLoadStatus.Corrupt, (await LoadAsync(key)).Status);
    }
}
