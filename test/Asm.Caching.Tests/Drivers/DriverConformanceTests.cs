using System.Diagnostics;
using Asm.Caching.Caching;
using Asm.Caching.Distributed;
using Asm.Caching.Sessions;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Time.Testing;

namespace Asm.Caching.Tests.Drivers;

/// <summary>
/// The behaviour every driver owes the session layer and the distributed cache. Each driver's test class inherits
/// this one and says how to build the driver under test; time-based rules run on a <see cref="FakeTimeProvider"/>.
/// </summary>
public abstract partial class DriverConformanceTests : IDisposable
{
    /// <summary>The idle timeout of the sessions these tests create.</summary>
    protected static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);

    protected static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(30);

    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(2));
    private ISessionDriver? _driver;
    private ISessionDriver? _realTimeDriver;

    /// <summary>The clock of the driver under test and of every request the tests make.</summary>
    protected FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    /// <summary>The session side of the driver under test, on <see cref="Clock"/>.</summary>
    protected ISessionDriver Sessions => _driver ??= CreateDriver(Clock);

    /// <summary>The cache side of the driver under test, on <see cref="Clock"/>.</summary>
    protected ICacheDriver Cache => (ICacheDriver)Sessions;

    /// <summary>
    /// A driver over the same storage whose waits run on the real clock, for tests where lock waits must time out
    /// by themselves (the fake clock never moves during them).
    /// </summary>
    protected ISessionDriver RealTimeSessions => _realTimeDriver ??= CreateDriver(TimeProvider.System);

    /// <summary>Cancels a test that hangs.</summary>
    protected CancellationToken Token => _timeout.Token;

    /// <summary>Hostile cache keys: path tricks, control characters, huge, unicode, empty-ish, case twins.</summary>
    protected static IReadOnlyList<string> HostileKeys { get; } =
    [
        "../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "/etc/passwd",
        "a\0b",
        "\0",
        new string('k', 10_000),
        "ключ-鍵-🔑",
        "\uD800",
        "\uFFFD",
        "",
        " ",
        ".",
        "..",
        "CON",
        "nul",
        "x/y",
        "X/y",
        ".locks/00.lock",
    ];

    /// <summary>
    /// Creates a driver under test. Drivers over shared storage (a directory, a server) share the test's storage;
    /// a test that uses <see cref="RealTimeSessions"/> uses nothing else, so in-process stores may be separate.
    /// </summary>
    protected abstract ISessionDriver CreateDriver(TimeProvider timeProvider);

    /// <summary>
    /// The names the driver's storage gives session <paramref name="sessionId"/> and the index of user
    /// <paramref name="userId"/> (Redis keys, file paths, with and without their prefix or directory), for the tests
    /// that use each as a cache key; none for a driver that keeps objects.
    /// </summary>
    protected virtual IEnumerable<string> StorageNames(string sessionId, string userId) => [];

    /// <summary>
    /// Makes the storage hold <paramref name="token"/> as the lock token of <paramref name="sessionId"/>, with the
    /// fence unchanged: what a failover to a replica that missed a grant leaves behind.
    /// </summary>
    protected abstract Task ReplaceLockTokenAsync(string sessionId, string token);

    /// <summary>
    /// Lets every lease on <paramref name="key"/> lapse. Drivers that judge leases by the caller's clock move
    /// <see cref="Clock"/> past the lease; a driver that judges them by the storage's own clock (Redis) overrides this.
    /// </summary>
    protected virtual Task LetLeasesLapseAsync(SessionKey key)
    {
        Clock.Advance(LeaseDuration + TimeSpan.FromSeconds(1));
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the test holds; a driver's test class also removes its storage here.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            _timeout.Dispose();
        }
    }

    [Fact]
    public async Task CommitAsync_CreateWithSecret_LoadFindsValues()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1, 2, 3], ["b"] = [] });

        var loaded = await LoadAsync(key);

        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal([1, 2, 3], loaded.Values["a"]);
        Assert.Empty(loaded.Values["b"]);
        Assert.Equal(2, loaded.Values.Count);
        Assert.Equal(Clock.GetUtcNow(), loaded.CreatedAt);
        Assert.Null(loaded.CurrentSecret);
        Assert.Null(loaded.Lease);
    }

    [Fact]
    public async Task LoadAsync_WrongSecret_ReturnsUnknown()
    {
        var key = await CreateSessionAsync();

        var loaded = await LoadAsync(key.WithNewSecret());

        Assert.Equal(SessionLoadStatus.Unknown, loaded.Status);
        Assert.Empty(loaded.Values);
    }

    [Fact]
    public async Task LoadAsync_UnknownId_ReturnsUnknown()
    {
        var loaded = await LoadAsync(SessionKey.New());

        Assert.Equal(SessionLoadStatus.Unknown, loaded.Status);
    }

    [Fact]
    public async Task CommitAsync_CreateOnExistingId_ReturnsNotFoundAndKeepsRecord()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var intruder = key.WithNewSecret();

        var status = await Sessions.CommitAsync(CreateRequest(intruder, new() { ["a"] = [2] }), Token);

        Assert.Equal(SessionCommitStatus.NotFound, status);
        Assert.Equal(SessionLoadStatus.Unknown, (await LoadAsync(intruder)).Status);
        Assert.Equal([1], (await LoadAsync(key)).Values["a"]);
    }

    [Fact]
    public async Task CommitAsync_TwoLocklessDeltasOnDifferentNames_BothPersist()
    {
        var key = await CreateSessionAsync(new() { ["kept"] = [0] });
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key)).Status);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key)).Status);

        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(key, new() { ["first"] = [1] }));
        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(key, new() { ["second"] = [2] }));

        var loaded = await LoadAsync(key);
        Assert.Equal([0], loaded.Values["kept"]);
        Assert.Equal([1], loaded.Values["first"]);
        Assert.Equal([2], loaded.Values["second"]);
    }

    [Fact]
    public async Task CommitAsync_NullValue_RemovesName()
    {
        var key = await CreateSessionAsync(new() { ["gone"] = [1], ["kept"] = [2] });

        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(key, new() { ["gone"] = null, ["never-there"] = null }));

        var loaded = await LoadAsync(key);
        Assert.False(loaded.Values.ContainsKey("gone"));
        Assert.False(loaded.Values.ContainsKey("never-there"));
        Assert.Equal([2], loaded.Values["kept"]);
    }

    [Fact]
    public async Task CommitAsync_Clear_RemovesEveryValueBeforeApplyingChanges()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1], ["b"] = [2] });

        var status = await Sessions.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                Now = Clock.GetUtcNow(),
                IdleTimeout = Idle,
                Clear = true,
                Changes = new Dictionary<string, byte[]?> { ["c"] = [3] },
            },
            Token);

        Assert.Equal(SessionCommitStatus.Committed, status);
        var loaded = await LoadAsync(key);
        Assert.Equal(["c"], loaded.Values.Keys);
        Assert.Equal([3], loaded.Values["c"]);
    }

    [Fact]
    public async Task LoadAsync_WithinIdleTimeout_SlidesIdleExpiry()
    {
        var key = await CreateSessionAsync();

        Clock.Advance(TimeSpan.FromMinutes(15));
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key)).Status);
        Clock.Advance(TimeSpan.FromMinutes(15));

        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key)).Status);
    }

    [Fact]
    public async Task LoadAsync_AfterIdleTimeout_ReturnsExpired()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });

        Clock.Advance(Idle + TimeSpan.FromSeconds(1));
        var loaded = await LoadAsync(key);

        Assert.Equal(SessionLoadStatus.Expired, loaded.Status);
        Assert.Empty(loaded.Values);
        Assert.Equal(SessionCommitStatus.NotFound, await CommitAsync(key, new() { ["a"] = [2] }));
    }

    [Fact]
    public async Task LoadAsync_AfterAbsoluteTimeout_ReturnsExpiredEvenWhenActive()
    {
        var key = await CreateSessionAsync(absoluteExpiresAt: Clock.GetUtcNow() + TimeSpan.FromMinutes(30));

        for (var i = 0; i < 5; i++)
        {
            Clock.Advance(TimeSpan.FromMinutes(5));
            Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key)).Status);
        }

        Clock.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));

        Assert.Equal(SessionLoadStatus.Expired, (await LoadAsync(key)).Status);
    }

    [Fact]
    public async Task LoadAsync_WithLease_AcquiresLockWithPositiveFence()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var wanted = SessionLease.Create(LeaseDuration);

        var loaded = await LoadAsync(key, wanted);

        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.NotNull(loaded.Lease);
        Assert.Equal(wanted.Token, loaded.Lease.Token);
        Assert.True(loaded.Lease.Fence > 0);
        Assert.Equal([1], loaded.Values["a"]);
    }

    [Fact]
    public async Task LoadAsync_SecondLeaseWhileHeld_ReturnsLockBusy()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Status);

        var second = await LoadAsync(key, SessionLease.Create(LeaseDuration));

        Assert.Equal(SessionLoadStatus.LockBusy, second.Status);
        Assert.Null(second.Lease);
        Assert.Empty(second.Values);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key)).Status);
    }

    [Fact]
    public async Task LoadAsync_AfterLeaseDurationPasses_GrantsNewLeaseWithHigherFence()
    {
        var key = await CreateSessionAsync();
        var first = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;

        await LetLeasesLapseAsync(key);
        var second = await LoadAsync(key, SessionLease.Create(LeaseDuration));

        Assert.Equal(SessionLoadStatus.Found, second.Status);
        Assert.NotNull(second.Lease);
        Assert.True(second.Lease.Fence > first.Fence);
    }

    [Fact]
    public async Task CommitAsync_WithLostLease_ReturnsLockLostAndWritesNothing()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var stale = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;
        await LetLeasesLapseAsync(key);
        var current = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;

        var status = await CommitAsync(key, new() { ["a"] = [9], ["b"] = [9] }, stale, releaseLock: true);

        Assert.Equal(SessionCommitStatus.LockLost, status);
        var loaded = await LoadAsync(key);
        Assert.Equal([1], loaded.Values["a"]);
        Assert.False(loaded.Values.ContainsKey("b"));
        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Status);
        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(key, new() { ["a"] = [2] }, current, releaseLock: true));
    }

    [Fact]
    public async Task CommitAsync_LeaseWithTheCurrentFenceButAnotherToken_ReturnsLockLostAndWritesNothing()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var old = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;
        await ReplaceLockTokenAsync(key.Id, SessionLease.Create(LeaseDuration).Token);

        var status = await CommitAsync(key, new() { ["a"] = [9] }, old, releaseLock: true);

        Assert.Equal(SessionCommitStatus.LockLost, status);
        Assert.Equal([1], (await LoadAsync(key)).Values["a"]);
    }

    [Fact]
    public async Task CommitAsync_UnderHeldLeaseWithoutRelease_KeepsTheLeaseForALaterCommit()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var lease = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;

        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(key, new() { ["a"] = [2] }, lease, releaseLock: false));
        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Status);
        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(key, new() { ["b"] = [3] }, lease, releaseLock: true));

        var loaded = await LoadAsync(key, SessionLease.Create(LeaseDuration));
        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal([2], loaded.Values["a"]);
        Assert.Equal([3], loaded.Values["b"]);
    }

    [Fact]
    public async Task CommitAsync_NameWithLoneSurrogate_ThrowsArgumentExceptionAndWritesNothing()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });

        await Assert.ThrowsAsync<ArgumentException>(() => CommitAsync(key, new() { ["a\uD800"] = [1], ["b"] = [2] }));

        var loaded = await LoadAsync(key);
        Assert.Equal(["a"], loaded.Values.Keys);
    }

    [Fact]
    public async Task CommitAsync_NamesThatDifferOnlyInTheirSurrogates_KeepBothValues()
    {
        var key = await CreateSessionAsync(new() { ["a\uD83D\uDE00"] = [1], ["a\uD83D\uDE01"] = [2] });

        var loaded = await LoadAsync(key);

        Assert.Equal([1], loaded.Values["a\uD83D\uDE00"]);
        Assert.Equal([2], loaded.Values["a\uD83D\uDE01"]);
    }

    [Fact]
    public async Task LoadAsync_CallerChangesTheArraysItWroteAndRead_StoredValuesStayAsCommitted()
    {
        byte[] written = [1, 2];
        var key = await CreateSessionAsync(new() { ["a"] = written });
        written[0] = 9;
        var first = await LoadAsync(key);
        first.Values["a"][1] = 9;

        Assert.Equal([1, 2], (await LoadAsync(key)).Values["a"]);
    }

    [Fact]
    public async Task RenewLockAsync_WhileHeld_ReturnsTrueAndExtendsLease()
    {
        var key = await CreateSessionAsync();
        var lease = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;

        Clock.Advance(LeaseDuration - TimeSpan.FromSeconds(5));
        Assert.True(await Sessions.RenewLockAsync(key.Id, lease, Clock.GetUtcNow(), Token));
        Clock.Advance(TimeSpan.FromSeconds(10));

        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Status);
        Assert.True(await Sessions.RenewLockAsync(key.Id, lease, Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task RenewLockAsync_AfterLeaseLost_ReturnsFalse()
    {
        var key = await CreateSessionAsync();
        var lost = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;
        await LetLeasesLapseAsync(key);
        var current = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;

        Assert.False(await Sessions.RenewLockAsync(key.Id, lost, Clock.GetUtcNow(), Token));
        Assert.True(await Sessions.RenewLockAsync(key.Id, current, Clock.GetUtcNow(), Token));
        Assert.False(await Sessions.RenewLockAsync(SessionKey.New().Id, current, Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task ReleaseLockAsync_HeldLease_FreesLockForNextCaller()
    {
        var key = await CreateSessionAsync();
        var lease = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;

        await Sessions.ReleaseLockAsync(key.Id, lease, Token);
        var next = await LoadAsync(key, SessionLease.Create(LeaseDuration));

        Assert.Equal(SessionLoadStatus.Found, next.Status);
        Assert.True(next.Lease!.Fence > lease.Fence);
        Assert.False(await Sessions.RenewLockAsync(key.Id, lease, Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task ReleaseLockAsync_GrantNeverSeenByTheCaller_ReleasesByToken()
    {
        var key = await CreateSessionAsync();
        var asked = SessionLease.Create(LeaseDuration);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key, asked)).Status);

        await Sessions.ReleaseLockAsync(key.Id, asked, Token);

        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Status);
    }

    [Fact]
    public async Task ReleaseLockAsync_LostLease_LeavesNewHolderLocked()
    {
        var key = await CreateSessionAsync();
        var lost = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;
        await LetLeasesLapseAsync(key);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Status);

        await Sessions.ReleaseLockAsync(key.Id, lost, Token);
        await Sessions.ReleaseLockAsync(SessionKey.New().Id, lost, Token);

        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Status);
    }

    [Fact]
    public async Task WaitForReleaseAsync_WhenHolderReleases_CompletesWellBeforeMaxWait()
    {
        var driver = RealTimeSessions;
        var key = await CreateSessionThroughAsync(driver);
        var lease = (await LoadAsync(driver, key, SessionLease.Create(LeaseDuration))).Lease!;

        var elapsed = await TimeWaitAsync(driver, key, () => driver.ReleaseLockAsync(key.Id, lease, Token).AsTask());

        Assert.True(elapsed < MaxWait / 2, $"The wait took {elapsed}.");
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(driver, key, SessionLease.Create(LeaseDuration))).Status);
    }

    [Fact]
    public async Task WaitForReleaseAsync_WhenHolderCommitsWithRelease_CompletesWellBeforeMaxWait()
    {
        var driver = RealTimeSessions;
        var key = await CreateSessionThroughAsync(driver);
        var lease = (await LoadAsync(driver, key, SessionLease.Create(LeaseDuration))).Lease!;

        var elapsed = await TimeWaitAsync(driver, key, () => CommitAsync(driver, key, new() { ["a"] = [1] }, lease, releaseLock: true));

        Assert.True(elapsed < MaxWait / 2, $"The wait took {elapsed}.");
    }

    [Fact]
    public async Task WaitForReleaseAsync_WhenSessionIsDestroyed_CompletesWellBeforeMaxWait()
    {
        var driver = RealTimeSessions;
        var key = await CreateSessionThroughAsync(driver);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(driver, key, SessionLease.Create(LeaseDuration))).Status);

        var elapsed = await TimeWaitAsync(
            driver,
            key,
            () => driver.DestroyAsync(key.Id, Clock.GetUtcNow(), Clock.GetUtcNow() + Idle, Token).AsTask());

        Assert.True(elapsed < MaxWait / 2, $"The wait took {elapsed}.");
    }

    [Fact]
    public async Task WaitForReleaseAsync_WithoutRelease_ReturnsAfterMaxWait()
    {
        var driver = RealTimeSessions;
        var key = await CreateSessionThroughAsync(driver);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(driver, key, SessionLease.Create(LeaseDuration))).Status);

        var watch = Stopwatch.StartNew();
        await driver.WaitForReleaseAsync(key.Id, TimeSpan.FromMilliseconds(50), Token).WaitAsync(TimeSpan.FromSeconds(10), Token);

        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(40), $"The wait took {watch.Elapsed}.");
    }

    [Fact]
    public async Task RegenerateAsync_NewSecret_LoadsFoundWithValues()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var renewed = key.WithNewSecret();

        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(key, renewed));
        var loaded = await LoadAsync(renewed);

        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal([1], loaded.Values["a"]);
        Assert.Null(loaded.CurrentSecret);
    }

    [Fact]
    public async Task RegenerateAsync_OldSecret_LoadsZombieWithCurrentSecretUntilWindowCloses()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var renewed = key.WithNewSecret();
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(key, renewed, TimeSpan.FromMinutes(1)));

        Clock.Advance(TimeSpan.FromSeconds(59));
        var zombie = await LoadAsync(key);

        Assert.Equal(SessionLoadStatus.Zombie, zombie.Status);
        Assert.Equal(renewed.Secret, zombie.CurrentSecret);
        Assert.Equal([1], zombie.Values["a"]);

        Clock.Advance(TimeSpan.FromSeconds(2));
        var expired = await LoadAsync(key);

        Assert.Equal(SessionLoadStatus.ZombieExpired, expired.Status);
        Assert.Null(expired.CurrentSecret);
        Assert.Empty(expired.Values);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(renewed)).Status);
    }

    [Fact]
    public async Task RegenerateAsync_OldSecretAfterItsWindow_TellsWhenTheWindowClosed_WithAndWithoutALease()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var closes = DateTimeOffset.FromUnixTimeMilliseconds((Clock.GetUtcNow() + TimeSpan.FromMinutes(1)).ToUnixTimeMilliseconds());
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(key, key.WithNewSecret(), TimeSpan.FromMinutes(1)));
        Assert.Null((await LoadAsync(key)).ZombieExpiredAt);

        Clock.Advance(TimeSpan.FromMinutes(2));
        var plain = await LoadAsync(key);
        var locked = await LoadAsync(key, SessionLease.Create(LeaseDuration));

        Assert.Equal((SessionLoadStatus.ZombieExpired, closes), (plain.Status, plain.ZombieExpiredAt));
        Assert.Equal((SessionLoadStatus.ZombieExpired, closes, null), (locked.Status, locked.ZombieExpiredAt, locked.Lease));
        Assert.Null((await LoadAsync(SessionKey.New())).ZombieExpiredAt);
    }

    [Fact]
    public async Task RegenerateAsync_WithProfile_ZombieLoadsCarryTheRegeneratingProfile()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var second = key.WithNewSecret();
        var third = second.WithNewSecret();
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(key, second, profile: "10.0.0.1|Firefox: x"));
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(second, third));

        Assert.Equal("10.0.0.1|Firefox: x", (await LoadAsync(key)).ZombieProfile);
        Assert.Null((await LoadAsync(second)).ZombieProfile);
        Assert.Null((await LoadAsync(third)).ZombieProfile);
    }

    [Fact]
    public async Task RegenerateAsync_Twice_KeepsBothOldSecretsAsZombies()
    {
        var first = await CreateSessionAsync();
        var second = first.WithNewSecret();
        var third = second.WithNewSecret();

        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(first, second));
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(second, third));

        var fromFirst = await LoadAsync(first);
        var fromSecond = await LoadAsync(second);
        Assert.Equal(SessionLoadStatus.Zombie, fromFirst.Status);
        Assert.Equal(third.Secret, fromFirst.CurrentSecret);
        Assert.Equal(SessionLoadStatus.Zombie, fromSecond.Status);
        Assert.Equal(third.Secret, fromSecond.CurrentSecret);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(third)).Status);
    }

    [Fact]
    public async Task LoadAsync_ThroughAZombie_SaysWhetherItIsTheSecretTheCurrentOneReplaced()
    {
        var first = await CreateSessionAsync();
        var second = first.WithNewSecret();
        var third = second.WithNewSecret();
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(first, second));
        Assert.True((await LoadAsync(first)).ZombieIsLatest);

        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(second, third));

        Assert.False((await LoadAsync(first)).ZombieIsLatest);
        Assert.True((await LoadAsync(second)).ZombieIsLatest);
        Assert.False((await LoadAsync(third)).ZombieIsLatest);
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(third, first));
        Assert.True((await LoadAsync(third)).ZombieIsLatest);
        Assert.False((await LoadAsync(second)).ZombieIsLatest);
    }

    /// <summary>A secret that comes back (A → B → A → C) is one zombie with the newest window, on every driver.</summary>
    [Fact]
    public async Task RegenerateAsync_SecretThatIsAlreadyAZombie_KeepsOneEntryWithTheNewestWindow()
    {
        var a = await CreateSessionAsync();
        var b = a.WithNewSecret();
        var c = a.WithNewSecret();

        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(a, b, TimeSpan.FromSeconds(10)));
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(b, a, TimeSpan.FromMinutes(1)));
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(a, c, TimeSpan.FromMinutes(1)));
        Clock.Advance(TimeSpan.FromSeconds(30));

        var fromA = await LoadAsync(a);
        Assert.Equal(SessionLoadStatus.Zombie, fromA.Status);
        Assert.Equal(c.Secret, fromA.CurrentSecret);
    }

    [Fact]
    public async Task RegenerateAsync_WrongSecretOrUnknownId_ReturnsNotFound()
    {
        var key = await CreateSessionAsync();

        Assert.Equal(SessionCommitStatus.NotFound, await RegenerateAsync(key.WithNewSecret(), key.WithNewSecret()));
        Assert.Equal(SessionCommitStatus.NotFound, await RegenerateAsync(SessionKey.New(), key.WithNewSecret()));
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(key)).Status);
    }

    [Fact]
    public async Task RegenerateAsync_UnderHeldLease_KeepsLeaseValid()
    {
        var key = await CreateSessionAsync();
        var lease = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;
        var renewed = key.WithNewSecret();

        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(key, renewed));

        Assert.True(await Sessions.RenewLockAsync(key.Id, lease, Clock.GetUtcNow(), Token));
        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(renewed, SessionLease.Create(LeaseDuration))).Status);
        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(key, new() { ["a"] = [1] }, lease, releaseLock: true));
        Assert.Equal([1], (await LoadAsync(renewed)).Values["a"]);
    }

    [Fact]
    public async Task LoadAsync_AfterDestroy_ReturnsDestroyed()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var renewed = key.WithNewSecret();
        Assert.Equal(SessionCommitStatus.Committed, await RegenerateAsync(key, renewed));

        await Sessions.DestroyAsync(key.Id, Clock.GetUtcNow(), Clock.GetUtcNow() + Idle, Token);

        var loaded = await LoadAsync(renewed);
        Assert.Equal(SessionLoadStatus.Destroyed, loaded.Status);
        Assert.Empty(loaded.Values);
        Assert.Equal(SessionLoadStatus.Destroyed, (await LoadAsync(key)).Status);
        Assert.Equal(SessionCommitStatus.NotFound, await RegenerateAsync(renewed, renewed.WithNewSecret()));
    }

    [Fact]
    public async Task CommitAsync_InFlightAfterDestroy_ReturnsNotFoundAndResurrectsNothing()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var lease = (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Lease!;

        await Sessions.DestroyAsync(key.Id, Clock.GetUtcNow(), Clock.GetUtcNow() + Idle, Token);

        Assert.Equal(SessionCommitStatus.NotFound, await CommitAsync(key, new() { ["a"] = [2] }, lease, releaseLock: true));
        Assert.Equal(SessionCommitStatus.NotFound, await CommitAsync(key, new() { ["b"] = [2] }));
        Assert.Equal(SessionCommitStatus.NotFound, await Sessions.CommitAsync(CreateRequest(key, new() { ["c"] = [3] }), Token));
        Assert.False(await Sessions.RenewLockAsync(key.Id, lease, Clock.GetUtcNow(), Token));
        var loaded = await LoadAsync(key);
        Assert.Equal(SessionLoadStatus.Destroyed, loaded.Status);
        Assert.Empty(loaded.Values);
    }

    [Fact]
    public async Task DestroyAsync_UnknownId_LeavesTombstoneThatRefusesCreation()
    {
        var key = SessionKey.New();

        await Sessions.DestroyAsync(key.Id, Clock.GetUtcNow(), Clock.GetUtcNow() + Idle, Token);

        Assert.Equal(SessionLoadStatus.Destroyed, (await LoadAsync(key)).Status);
        Assert.Equal(SessionCommitStatus.NotFound, await Sessions.CommitAsync(CreateRequest(key, []), Token));
    }

    [Fact]
    public async Task CommitAsync_AddProfiles_RecordsNewestBoundedByMaxProfiles()
    {
        var key = await CreateSessionAsync();

        await CommitProfilesAsync(key, "a", "b");
        await CommitProfilesAsync(key, "c", "d");
        Assert.Equal(["b", "c", "d"], (await LoadAsync(key)).Profiles);

        await CommitProfilesAsync(key, "b");
        Assert.Equal(["c", "d", "b"], (await LoadAsync(key)).Profiles);
    }

    [Fact]
    public async Task CommitAsync_HundredParallelLeasedIncrements_CountsExactlyHundred()
    {
        var driver = RealTimeSessions;
        var key = await CreateSessionThroughAsync(driver, new() { ["counter"] = BitConverter.GetBytes(0) });

        await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => Task.Run(() => IncrementAsync(driver, key), Token)))
            .WaitAsync(TimeSpan.FromMinutes(1), Token);

        Assert.Equal(100, BitConverter.ToInt32((await LoadAsync(driver, key)).Values["counter"]));
    }

    [Fact]
    public async Task CommitAsync_HundredParallelLocklessDeltas_KeepsEveryName()
    {
        var driver = RealTimeSessions;
        var key = await CreateSessionThroughAsync(driver);

        var statuses = await Task.WhenAll(Enumerable.Range(0, 100).Select(i =>
            Task.Run(() => CommitAsync(driver, key, new() { [$"name-{i}"] = BitConverter.GetBytes(i) }), Token)))
            .WaitAsync(TimeSpan.FromMinutes(1), Token);

        Assert.All(statuses, s => Assert.Equal(SessionCommitStatus.Committed, s));
        var values = (await LoadAsync(driver, key)).Values;
        Assert.Equal(100, values.Count);
        Assert.All(Enumerable.Range(0, 100), i => Assert.Equal(i, BitConverter.ToInt32(values[$"name-{i}"])));
    }

    [Fact]
    public async Task GetAsync_AfterSet_ReturnsValueAndMissingKeyReturnsNull()
    {
        await Cache.SetAsync("key", [1, 2], Never(), Token);

        Assert.Equal([1, 2], await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
        Assert.Null(await Cache.GetAsync("missing", Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task SetAsync_ExistingKey_ReplacesValueAndExpiration()
    {
        await Cache.SetAsync("key", [1], new CacheEntryExpiration(Clock.GetUtcNow(), Clock.GetUtcNow() + TimeSpan.FromMinutes(1), null), Token);
        await Cache.SetAsync("key", [2], Never(), Token);

        Clock.Advance(TimeSpan.FromMinutes(2));

        Assert.Equal([2], await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task RemoveAsync_ExistingAndMissingKeys_RemovesWithoutThrowing()
    {
        await Cache.SetAsync("key", [1], Never(), Token);

        await Cache.RemoveAsync("key", Token);
        await Cache.RemoveAsync("missing", Token);
        await Cache.RefreshAsync("missing", Clock.GetUtcNow(), Token);

        Assert.Null(await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task GetAsync_AfterAbsoluteExpiry_ReturnsNull()
    {
        await Cache.SetAsync("key", [1], new CacheEntryExpiration(Clock.GetUtcNow(), Clock.GetUtcNow() + TimeSpan.FromMinutes(5), null), Token);

        Clock.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal([1], await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
        Clock.Advance(TimeSpan.FromMinutes(1));

        Assert.Null(await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task DistributedCacheGetAsync_AfterRelativeExpiry_ReturnsNull()
    {
        var cache = new AsmDistributedCache(Cache, Clock);
        await cache.SetAsync("key", [1], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(5) }, Token);

        Clock.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal([1], await cache.GetAsync("key", Token));
        Clock.Advance(TimeSpan.FromMinutes(1));

        Assert.Null(await cache.GetAsync("key", Token));
    }

    [Fact]
    public async Task GetAsync_SlidingExpiry_SlidesOnEveryRead()
    {
        await Cache.SetAsync("key", [1], new CacheEntryExpiration(Clock.GetUtcNow(), null, TimeSpan.FromMinutes(10)), Token);

        for (var i = 0; i < 3; i++)
        {
            Clock.Advance(TimeSpan.FromMinutes(8));
            Assert.Equal([1], await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
        }

        Clock.Advance(TimeSpan.FromMinutes(10));

        Assert.Null(await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task RefreshAsync_SlidingExpiry_SlidesWithoutRead()
    {
        var cache = new AsmDistributedCache(Cache, Clock);
        await cache.SetAsync("key", [1], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(10) }, Token);

        Clock.Advance(TimeSpan.FromMinutes(8));
        await cache.RefreshAsync("key", Token);
        Clock.Advance(TimeSpan.FromMinutes(8));

        Assert.Equal([1], await cache.GetAsync("key", Token));
    }

    [Fact]
    public async Task GetAsync_SlidingExpiryPastAbsolute_ExpiresAtAbsolute()
    {
        var start = Clock.GetUtcNow();
        await Cache.SetAsync("key", [1], new CacheEntryExpiration(start, start + TimeSpan.FromMinutes(15), TimeSpan.FromMinutes(10)), Token);

        Clock.Advance(TimeSpan.FromMinutes(8));
        Assert.Equal([1], await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
        Clock.Advance(TimeSpan.FromMinutes(8));

        Assert.Null(await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task SetAsync_HostileKeys_RoundTripWithoutCollisions()
    {
        for (var i = 0; i < HostileKeys.Count; i++)
        {
            await Cache.SetAsync(HostileKeys[i], BitConverter.GetBytes(i), Never(), Token);
        }

        for (var i = 0; i < HostileKeys.Count; i++)
        {
            var value = await Cache.GetAsync(HostileKeys[i], Clock.GetUtcNow(), Token);
            Assert.NotNull(value);
            Assert.Equal(i, BitConverter.ToInt32(value));
        }

        await Cache.RemoveAsync("../../etc/passwd", Token);
        Assert.Null(await Cache.GetAsync("../../etc/passwd", Clock.GetUtcNow(), Token));
        Assert.NotNull(await Cache.GetAsync("/etc/passwd", Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task SweepAsync_ExpiredEntries_RemovedAndLiveOnesKept()
    {
        if (Sessions is not ISweepableDriver sweepable)
        {
            return;
        }

        var start = Clock.GetUtcNow();
        var stale = await CreateSessionAsync(new() { ["a"] = [1] });
        var live = await CreateSessionAsync(new() { ["a"] = [2] }, idleTimeout: TimeSpan.FromHours(2));
        await Cache.SetAsync("stale", [1], new CacheEntryExpiration(start, start + TimeSpan.FromMinutes(5), null), Token);
        await Cache.SetAsync("live", [2], Never(), Token);
        await Cache.SetAsync("sliding", [3], new CacheEntryExpiration(start, null, TimeSpan.FromHours(1)), Token);

        Clock.Advance((2 * Idle) + TimeSpan.FromMinutes(1));
        var removed = await sweepable.SweepAsync(Clock.GetUtcNow(), Token);

        Assert.Equal(2, removed);
        Assert.Equal(SessionLoadStatus.Unknown, (await LoadAsync(stale)).Status);
        Assert.Equal([2], (await LoadAsync(live, idleTimeout: TimeSpan.FromHours(2))).Values["a"]);
        Assert.Null(await Cache.GetAsync("stale", Clock.GetUtcNow(), Token));
        Assert.Equal([2], await Cache.GetAsync("live", Clock.GetUtcNow(), Token));
        Assert.Equal([3], await Cache.GetAsync("sliding", Clock.GetUtcNow(), Token));
        Assert.Equal(0, await sweepable.SweepAsync(Clock.GetUtcNow(), Token));
    }

    [Fact]
    public async Task SweepAsync_TombstoneBeforeItsPurgeTime_IsKept()
    {
        if (Sessions is not ISweepableDriver sweepable)
        {
            return;
        }

        var key = await CreateSessionAsync();
        await Sessions.DestroyAsync(key.Id, Clock.GetUtcNow(), Clock.GetUtcNow() + TimeSpan.FromHours(3), Token);

        Clock.Advance(TimeSpan.FromHours(2));
        await sweepable.SweepAsync(Clock.GetUtcNow(), Token);
        Assert.Equal(SessionLoadStatus.Destroyed, (await LoadAsync(key)).Status);

        Clock.Advance(TimeSpan.FromHours(2));
        Assert.Equal(1, await sweepable.SweepAsync(Clock.GetUtcNow(), Token));
        Assert.Equal(SessionLoadStatus.Unknown, (await LoadAsync(key)).Status);
    }

    /// <summary>
    /// The bound of the waits that must end early: a wake-up takes milliseconds, a missed one all of it, and half of
    /// it absorbs a busy machine.
    /// </summary>
    private static TimeSpan MaxWait => TimeSpan.FromSeconds(60);

    /// <summary>Creates a session with the current secret of a new key.</summary>
    protected Task<SessionKey> CreateSessionAsync(
        Dictionary<string, byte[]?>? values = null,
        DateTimeOffset? absoluteExpiresAt = null,
        TimeSpan? idleTimeout = null) =>
        CreateSessionThroughAsync(Sessions, values, absoluteExpiresAt, idleTimeout);

    /// <summary>Creates a session through <paramref name="driver"/>.</summary>
    protected async Task<SessionKey> CreateSessionThroughAsync(
        ISessionDriver driver,
        Dictionary<string, byte[]?>? values = null,
        DateTimeOffset? absoluteExpiresAt = null,
        TimeSpan? idleTimeout = null)
    {
        var key = SessionKey.New();
        var request = CreateRequest(key, values ?? [], absoluteExpiresAt, idleTimeout);
        Assert.Equal(SessionCommitStatus.Committed, await driver.CommitAsync(request, Token));
        return key;
    }

    /// <summary>Binds the session of <paramref name="key"/> to <paramref name="userId"/> (which regenerates it); the new key.</summary>
    protected async Task<SessionKey> BindUserAsync(SessionKey key, string userId)
    {
        var bound = key.WithNewSecret();
        var bind = new SessionRegenerateRequest { Key = key, NewSecret = bound.Secret, Now = Clock.GetUtcNow(), ZombieExpiresAt = Clock.GetUtcNow() + TimeSpan.FromMinutes(1) };
        Assert.Equal(SessionCommitStatus.Committed, (await ((ISessionTrackingDriver)Sessions).BindUserAsync(bind, userId, Token)).Status);
        return bound;
    }

    /// <summary>Loads <paramref name="key"/> at the current fake time.</summary>
    protected Task<SessionLoadResult> LoadAsync(SessionKey key, SessionLease? lease = null, TimeSpan? idleTimeout = null) =>
        LoadAsync(Sessions, key, lease, idleTimeout);

    /// <summary>Loads <paramref name="key"/> through <paramref name="driver"/> at the current fake time.</summary>
    protected async Task<SessionLoadResult> LoadAsync(ISessionDriver driver, SessionKey key, SessionLease? lease = null, TimeSpan? idleTimeout = null) =>
        await driver.LoadAsync(
            new SessionLoadRequest { Key = key, Now = Clock.GetUtcNow(), IdleTimeout = idleTimeout ?? Idle, Lease = lease },
            Token);

    /// <summary>Commits a delta to <paramref name="key"/>.</summary>
    protected Task<SessionCommitStatus> CommitAsync(
        SessionKey key,
        Dictionary<string, byte[]?> changes,
        SessionLease? lease = null,
        bool releaseLock = false) =>
        CommitAsync(Sessions, key, changes, lease, releaseLock);

    /// <summary>Commits a delta to <paramref name="key"/> through <paramref name="driver"/>.</summary>
    protected async Task<SessionCommitStatus> CommitAsync(
        ISessionDriver driver,
        SessionKey key,
        Dictionary<string, byte[]?> changes,
        SessionLease? lease = null,
        bool releaseLock = false) =>
        await driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                Now = Clock.GetUtcNow(),
                IdleTimeout = Idle,
                Lease = lease,
                ReleaseLock = releaseLock,
                Changes = changes,
            },
            Token);

    /// <summary>Increments the counter of <paramref name="key"/> under its lock, waiting while another holder has it.</summary>
    protected async Task IncrementAsync(ISessionDriver driver, SessionKey key)
    {
        while (true)
        {
            var loaded = await LoadAsync(driver, key, SessionLease.Create(TimeSpan.FromMinutes(5)));
            if (loaded.Status == SessionLoadStatus.LockBusy)
            {
                await driver.WaitForReleaseAsync(key.Id, TimeSpan.FromMilliseconds(100), Token);
                continue;
            }

            Assert.Equal(SessionLoadStatus.Found, loaded.Status);
            var next = BitConverter.ToInt32(loaded.Values["counter"]) + 1;
            var status = await CommitAsync(driver, key, new() { ["counter"] = BitConverter.GetBytes(next) }, loaded.Lease, releaseLock: true);
            Assert.Equal(SessionCommitStatus.Committed, status);
            return;
        }
    }

    private SessionCommitRequest CreateRequest(
        SessionKey key,
        Dictionary<string, byte[]?> values,
        DateTimeOffset? absoluteExpiresAt = null,
        TimeSpan? idleTimeout = null) => new()
        {
            SessionId = key.Id,
            Now = Clock.GetUtcNow(),
            IdleTimeout = idleTimeout ?? Idle,
            CreateWithSecret = key.Secret,
            AbsoluteExpiresAt = absoluteExpiresAt,
            Changes = values,
        };

    protected async Task<SessionCommitStatus> RegenerateAsync(SessionKey presented, SessionKey renewed, TimeSpan? zombieWindow = null, string? profile = null) =>
        await Sessions.RegenerateAsync(
            new SessionRegenerateRequest
            {
                Key = presented,
                NewSecret = renewed.Secret,
                Now = Clock.GetUtcNow(),
                ZombieExpiresAt = Clock.GetUtcNow() + (zombieWindow ?? TimeSpan.FromMinutes(1)),
                Profile = profile,
            },
            Token);

    private async Task CommitProfilesAsync(SessionKey key, params string[] profiles)
    {
        var status = await Sessions.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                Now = Clock.GetUtcNow(),
                IdleTimeout = Idle,
                AddProfiles = profiles,
                MaxProfiles = 3,
            },
            Token);
        Assert.Equal(SessionCommitStatus.Committed, status);
    }

    /// <summary>
    /// Completes once a release through the storage of <paramref name="driver"/> (connected) wakes its waiters; a
    /// driver that learns of releases by a subscription it makes in the background overrides this.
    /// </summary>
    protected virtual Task WhenWakeUpsArriveAsync(ISessionDriver driver) => Task.CompletedTask;

    /// <summary>
    /// Times a waiter's wait from its refused load (the lock is held) until <paramref name="release"/> wakes it, as a
    /// request waits for a lock.
    /// </summary>
    private async Task<TimeSpan> TimeWaitAsync(ISessionDriver driver, SessionKey key, Func<Task> release)
    {
        await WhenWakeUpsArriveAsync(driver);
        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(driver, key, SessionLease.Create(LeaseDuration))).Status);
        var watch = Stopwatch.StartNew();
        var wait = driver.WaitForReleaseAsync(key.Id, MaxWait, Token);
        Assert.False(wait.IsCompleted);

        await release();
        await wait.WaitAsync(MaxWait * 2, Token);
        return watch.Elapsed;
    }

    protected CacheEntryExpiration Never() => new(Clock.GetUtcNow(), null, null);
}
