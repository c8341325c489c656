using Asm.Caching.Sessions;

namespace Asm.Caching.Tests.Drivers;

/// <summary>Handing whole records over and taking them in (<see cref="ISessionTransferDriver"/>), on every driver.</summary>
public abstract partial class DriverConformanceTests
{
    private ISessionTransferDriver Transfer => (ISessionTransferDriver)Sessions;

    [Fact]
    public async Task ExportThenImport_KeepsSecretZombiesProfilesValuesAndTimeouts()
    {
        var created = Clock.GetUtcNow();
        var absolute = created + TimeSpan.FromHours(8);
        var old = await CreateSessionAsync(new() { ["a"] = [1, 2], ["empty"] = [] }, absolute);
        var key = old.WithNewSecret();
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(old, key, TimeSpan.FromMinutes(1)));
        await CommitProfilesAsync(key, "first", "second");
        Clock.Advance(TimeSpan.FromSeconds(10));

        var export = await Transfer.ExportAsync(key.Id, SessionLease.Create(TimeSpan.FromSeconds(30)), Clock.GetUtcNow(), Token);

        Assert.Equal(SessionLoadStatus.Found, export.Status);
        var snapshot = export.Snapshot!;
        Assert.Equal(key.Secret, snapshot.Secret);
        Assert.Equal(created, snapshot.CreatedAt);
        Assert.Equal(created + Idle, snapshot.IdleExpiresAt);
        Assert.Equal(absolute, snapshot.AbsoluteExpiresAt);
        Assert.Equal([new SessionZombie(old.Secret, created + TimeSpan.FromMinutes(1))], snapshot.Zombies);
        Assert.Equal(["first", "second"], snapshot.Profiles);
        Assert.Equal([1, 2], snapshot.Values["a"]);
        Assert.Empty(snapshot.Values["empty"]);
        Assert.Equal(export.Lease!.Fence, snapshot.Fence);

        var moved = SessionKey.New();
        Assert.True(await Transfer.ImportAsync(snapshot with { SessionId = moved.Id }, Clock.GetUtcNow(), Token));
        var current = await LoadAsync(SessionKey.Create(moved.Id, key.Secret), SessionLease.Create(TimeSpan.FromSeconds(30)));
        Assert.Equal(SessionLoadStatus.Found, current.Status);
        Assert.True(current.Lease!.Fence > snapshot.Fence);
        Assert.Equal(created, current.CreatedAt);
        Assert.Equal(["first", "second"], current.Profiles);
        Assert.Equal([1, 2], current.Values["a"]);
        var zombie = await LoadAsync(SessionKey.Create(moved.Id, old.Secret));
        Assert.Equal(SessionLoadStatus.Zombie, zombie.Status);
        Assert.Equal(key.Secret, zombie.CurrentSecret);
        Clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(SessionLoadStatus.ZombieExpired, (await LoadAsync(SessionKey.Create(moved.Id, old.Secret))).Status);
    }

    /// <summary>How a move takes back the copy it stored when it cannot end the previous one: no tombstone is left.</summary>
    [Fact]
    public async Task Destroy_TombstoneEndingNow_LeavesNoRecord_SoTheSessionCanBeImportedAgain()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var snapshot = (await Transfer.ExportAsync(key.Id, SessionLease.Create(TimeSpan.FromSeconds(30)), Clock.GetUtcNow(), Token)).Snapshot!;

        await Sessions.DestroyAsync(key.Id, Clock.GetUtcNow(), Clock.GetUtcNow(), Token);

        Assert.Equal(SessionLoadStatus.Unknown, (await LoadAsync(key)).Status);
        Assert.True(await Transfer.ImportAsync(snapshot, Clock.GetUtcNow(), Token));
        Assert.Equal([1], (await LoadAsync(key)).Values["a"]);
    }

    [Fact]
    public async Task ExportThenImport_KeepsTheProfileOfTheRequestThatReplacedEachZombie_AndWhichIsTheLatest()
    {
        var first = await CreateSessionAsync(new() { ["a"] = [1] });
        var second = first.WithNewSecret();
        var third = second.WithNewSecret();
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(first, second, profile: "10.0.0.1|Firefox: x"));
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(second, third));

        var snapshot = (await Transfer.ExportAsync(third.Id, SessionLease.Create(TimeSpan.FromSeconds(30)), Clock.GetUtcNow(), Token)).Snapshot!;

        Assert.Equal(["10.0.0.1|Firefox: x", null], snapshot.Zombies.Select(z => z.Profile));
        var moved = SessionKey.New();
        Assert.True(await Transfer.ImportAsync(snapshot with { SessionId = moved.Id }, Clock.GetUtcNow(), Token));
        var zombie = await LoadAsync(SessionKey.Create(moved.Id, first.Secret));
        Assert.Equal(SessionLoadStatus.Zombie, zombie.Status);
        Assert.Equal("10.0.0.1|Firefox: x", zombie.ZombieProfile);
        Assert.False(zombie.ZombieIsLatest);
        var latest = await LoadAsync(SessionKey.Create(moved.Id, second.Secret));
        Assert.Null(latest.ZombieProfile);
        Assert.True(latest.ZombieIsLatest);
    }

    [Fact]
    public async Task ExportThenImport_KeepsTheUserTheSessionIsBoundTo()
    {
        var tracking = (ISessionTrackingDriver)Sessions;
        var bound = await BindUserAsync(await CreateSessionAsync(new() { ["a"] = [1] }), "ada {x}");
        var unbound = await CreateSessionAsync();

        var snapshot = (await Transfer.ExportAsync(bound.Id, SessionLease.Create(TimeSpan.FromSeconds(30)), Clock.GetUtcNow(), Token)).Snapshot!;
        var unboundSnapshot = (await Transfer.ExportAsync(unbound.Id, SessionLease.Create(TimeSpan.FromSeconds(30)), Clock.GetUtcNow(), Token)).Snapshot!;

        Assert.Equal("ada {x}", snapshot.UserId);
        Assert.Null(unboundSnapshot.UserId);
        var moved = SessionKey.New();
        Assert.True(await Transfer.ImportAsync(snapshot with { SessionId = moved.Id }, Clock.GetUtcNow(), Token));
        Assert.Equal("ada {x}", (await LoadAsync(SessionKey.Create(moved.Id, bound.Secret))).UserId);
        Assert.Equal("ada {x}", (await tracking.GetInfoAsync(moved.Id, Token))!.UserId);
        var movedUnbound = SessionKey.New();
        Assert.True(await Transfer.ImportAsync(unboundSnapshot with { SessionId = movedUnbound.Id }, Clock.GetUtcNow(), Token));
        Assert.Null((await tracking.GetInfoAsync(movedUnbound.Id, Token))!.UserId);
    }

    [Fact]
    public async Task Export_TakesTheLock_AndWaitsForAnotherHolder()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var holder = (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Lease!;

        var busy = await Transfer.ExportAsync(key.Id, SessionLease.Create(TimeSpan.FromSeconds(30)), Clock.GetUtcNow(), Token);
        Assert.Equal(SessionLoadStatus.LockBusy, busy.Status);
        Assert.Null(busy.Snapshot);

        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(key, new() { ["a"] = [2] }, holder, releaseLock: true));
        var export = await Transfer.ExportAsync(key.Id, SessionLease.Create(TimeSpan.FromSeconds(30)), Clock.GetUtcNow(), Token);
        Assert.Equal(SessionLoadStatus.Found, export.Status);
        Assert.Equal([2], export.Snapshot!.Values["a"]);
        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(key, SessionLease.Create(TimeSpan.FromSeconds(30)))).Status);
        Assert.Equal(SessionCommitStatus.LockLost, await CommitAsync(key, new() { ["a"] = [3] }, holder));
    }

    [Fact]
    public async Task Export_OfUnknownExpiredAndDestroyedSessions_ExportsNothing()
    {
        var destroyed = await CreateSessionAsync();
        await Sessions.DestroyAsync(destroyed.Id, Clock.GetUtcNow(), Clock.GetUtcNow() + Idle, Token);
        var expired = await CreateSessionAsync(idleTimeout: TimeSpan.FromMinutes(1));
        Clock.Advance(TimeSpan.FromMinutes(2));

        foreach (var (id, status) in new[]
        {
            (SessionKey.New().Id, SessionLoadStatus.Unknown),
            (expired.Id, SessionLoadStatus.Expired),
            (destroyed.Id, SessionLoadStatus.Destroyed),
        })
        {
            var export = await Transfer.ExportAsync(id, SessionLease.Create(TimeSpan.FromSeconds(30)), Clock.GetUtcNow(), Token);
            Assert.Equal(status, export.Status);
            Assert.Null(export.Snapshot);
        }
    }

    [Fact]
    public async Task Import_RefusesAnIdThatExists_EvenATombstone()
    {
        var live = await CreateSessionAsync(new() { ["a"] = [1] });
        var destroyed = await CreateSessionAsync();
        await Sessions.DestroyAsync(destroyed.Id, Clock.GetUtcNow(), Clock.GetUtcNow() + Idle, Token);
        var snapshot = new SessionSnapshot
        {
            SessionId = live.Id,
            Secret = SessionKey.New().Secret,
            CreatedAt = Clock.GetUtcNow(),
            IdleExpiresAt = Clock.GetUtcNow() + Idle,
            PurgeAt = Clock.GetUtcNow() + Idle + Idle,
            Values = new Dictionary<string, byte[]> { ["a"] = [9] },
        };

        Assert.False(await Transfer.ImportAsync(snapshot, Clock.GetUtcNow(), Token));
        Assert.False(await Transfer.ImportAsync(snapshot with { SessionId = destroyed.Id }, Clock.GetUtcNow(), Token));

        Assert.Equal([1], (await LoadAsync(live)).Values["a"]);
        Assert.Equal(SessionLoadStatus.Destroyed, (await LoadAsync(destroyed)).Status);
    }
}
