using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;
using Asm.Caching.Caching;
using Asm.Caching.Drivers.FileSystem;
using Asm.Caching.Records;
using Asm.Caching.Sessions;
using Asm.Testing.Cleanup;
using Asm.Testing.Faults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace Asm.Caching.Tests.Drivers;

public sealed partial class FileSystemDriverTests(ITestOutputHelper output) : StoredDriverConformanceTests
{
    /// <summary>Everything a test writes must stay under this root; the store sits two levels below it.</summary>
    private readonly string _root = TestDirectories.Create("asm-fs-tests-");

    private string StoreDirectory => Path.Combine(_root, "a", "b", "store");

    private FileSystemDriver Driver => (FileSystemDriver)Sessions;

    protected override ISessionDriver CreateDriver(TimeProvider timeProvider) =>
        new FileSystemDriver(
            Options.Create(new FileSystemDriverOptions { Directory = StoreDirectory }),
            timeProvider,
            NullLogger<FileSystemDriver>.Instance);

    /// <summary>Every file of the store (the session's, its end check, the user index, the lock stripes), as full, relative and bare names.</summary>
    protected override IEnumerable<string> StorageNames(string sessionId, string userId) =>
        Directory.EnumerateFiles(StoreDirectory, "*", SearchOption.AllDirectories)
            .SelectMany(path => new[] { path, Path.GetRelativePath(StoreDirectory, path), Path.GetFileName(path) });

    /// <summary>Cuts the session file in half, as a disk error or a careless copy would.</summary>
    protected override async Task CorruptStoredSessionAsync(string sessionId)
    {
        var path = Driver.GetSessionFilePath(sessionId);
        var data = await File.ReadAllBytesAsync(path, Token);
        await File.WriteAllBytesAsync(path, data[..(data.Length / 2)], Token);
    }

    protected override async Task ReplaceLockTokenAsync(string sessionId, string token)
    {
        var path = Driver.GetSessionFilePath(sessionId);
        Assert.True(SessionFileFormat.TryDeserialize(await File.ReadAllBytesAsync(path, Token), out var record));
        record.LockToken = token;
        await File.WriteAllBytesAsync(path, SessionFileFormat.Serialize(record), Token);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            TestDirectories.Delete(_root);
        }

        base.Dispose(disposing);
    }

    [Fact]
    public async Task SetAsync_HostileKeys_WriteOnlyHashedFilesInsideDirectory()
    {
        foreach (var key in HostileKeys)
        {
            await Cache.SetAsync(key, [1], new CacheEntryExpiration(Clock.GetUtcNow(), null, null), Token);
        }

        var files = Directory.GetFiles(_root, "*", SearchOption.AllDirectories);
        var store = Path.GetFullPath(StoreDirectory);
        var locks = Path.Combine(store, ".locks");
        Assert.All(files, file => Assert.True(
            (Path.GetDirectoryName(file) == store && CacheFileName().IsMatch(Path.GetFileName(file)))
            || (Path.GetDirectoryName(file) == locks && LockFileName().IsMatch(Path.GetFileName(file))),
            $"Unexpected file {file}."));
        Assert.Equal(HostileKeys.Count, files.Count(f => f.EndsWith(".cache", StringComparison.Ordinal)));
        Assert.Equal(["store"], Directory.GetDirectories(Path.Combine(_root, "a", "b")).Select(Path.GetFileName));
    }

    [Fact]
    public async Task LoadAsync_EveryTruncationOfTheFile_ReturnsCorruptAndKeepsFile()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1, 2, 3], ["\uFFFD名"] = [] });
        var renewed = key.WithNewSecret();
        await Sessions.RegenerateAsync(
            new SessionRegenerateRequest { Key = key, NewSecret = renewed.Secret, Now = Clock.GetUtcNow(), ZombieExpiresAt = Clock.GetUtcNow() + Idle, Profile = "127.0.0.1|curl" },
            Token);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(renewed, SessionLease.Create(TimeSpan.FromMinutes(1)))).Status);
        var path = Driver.GetSessionFilePath(key.Id);
        var whole = await File.ReadAllBytesAsync(path, Token);

        for (var length = 0; length < whole.Length; length++)
        {
            await File.WriteAllBytesAsync(path, whole[..length], Token);
            Assert.Equal(SessionLoadStatus.Corrupt, (await LoadAsync(renewed)).Status);
            Assert.True(File.Exists(path));
        }

        await File.WriteAllBytesAsync(path, [.. whole, 0], Token);
        Assert.Equal(SessionLoadStatus.Corrupt, (await LoadAsync(renewed)).Status);
        await File.WriteAllBytesAsync(path, whole, Token);
        Assert.Equal(SessionLoadStatus.Found, (await LoadAsync(renewed)).Status);
    }

    /// <summary>
    /// A FIFO (whose ordinary open blocks until a writer comes) or a directory at a session's path reads as a damaged
    /// record, with or without a lock, never a hang or an error; the sweeper passes over it and leaves it for inspection.
    /// </summary>
    [Theory]
    [InlineData("fifo")]
    [InlineData("directory")]
    public async Task LoadAsync_AFifoOrADirectoryAtTheSessionsPath_ReturnsCorruptWithoutHanging_AndTheSweepLeavesIt(string planted)
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var path = Driver.GetSessionFilePath(key.Id);
        File.Delete(path);
        if (planted == "fifo")
        {
            FaultCommand.Run("mkfifo", path);
        }
        else
        {
            Directory.CreateDirectory(path);
        }

        // On another thread: an open that blocks would block its caller before any await.
        var patience = TimeSpan.FromSeconds(30);
        Assert.Equal(SessionLoadStatus.Corrupt, (await Task.Run(() => LoadAsync(key)).WaitAsync(patience)).Status);
        Assert.Equal(SessionLoadStatus.Corrupt, (await Task.Run(() => LoadAsync(key, SessionLease.Create(TimeSpan.FromMinutes(1)))).WaitAsync(patience)).Status);
        Clock.Advance(TimeSpan.FromDays(1));
        await Task.Run(() => Driver.SweepAsync(Clock.GetUtcNow(), Token).AsTask()).WaitAsync(patience);

        Assert.True(Path.Exists(path));
    }

    [Fact]
    public async Task LoadAsync_UnknownFormatVersionOrGarbage_ReturnsCorrupt()
    {
        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        var path = Driver.GetSessionFilePath(key.Id);
        var whole = await File.ReadAllBytesAsync(path, Token);

        whole[0] = SessionFileFormat.Version + 1;
        await File.WriteAllBytesAsync(path, whole, Token);
        Assert.Equal(SessionLoadStatus.Corrupt, (await LoadAsync(key)).Status);

        var random = new Random(42);
        for (var i = 0; i < 50; i++)
        {
            var garbage = new byte[random.Next(0, 400)];
            random.NextBytes(garbage);
            garbage[0] = i % 2 == 0 ? SessionFileFormat.Version : garbage[0];
            await File.WriteAllBytesAsync(path, garbage, Token);
            Assert.Equal(SessionLoadStatus.Corrupt, (await LoadAsync(key, SessionLease.Create(TimeSpan.FromMinutes(1)))).Status);
        }

        await File.WriteAllBytesAsync(path, [SessionFileFormat.Version, .. new byte[8], 0, 0xFF, 0xFF, 0xFF, 0x7F], Token);
        Assert.Equal(SessionLoadStatus.Corrupt, (await LoadAsync(key)).Status);
    }

    [Fact]
    public async Task GetAsync_CorruptCacheFile_ReturnsNull()
    {
        await Cache.SetAsync("key", [1, 2, 3], new CacheEntryExpiration(Clock.GetUtcNow(), null, TimeSpan.FromMinutes(5)), Token);
        var path = Driver.GetCacheFilePath("key");
        var whole = await File.ReadAllBytesAsync(path, Token);

        for (var length = 0; length < whole.Length; length++)
        {
            await File.WriteAllBytesAsync(path, whole[..length], Token);
            Assert.Null(await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
            await Cache.RefreshAsync("key", Clock.GetUtcNow(), Token);
        }

        await File.WriteAllBytesAsync(path, whole, Token);
        Assert.Equal([1, 2, 3], await Cache.GetAsync("key", Clock.GetUtcNow(), Token));
    }

    [Fact]
    public void SessionFileFormat_EveryField_RoundTrips()
    {
        var record = new SessionRecord
        {
            Secret = "secret",
            CreatedAt = 1,
            IdleExpiresAt = 2,
            AbsoluteExpiresAt = SessionRecord.Never,
            Fence = 4,
            LockToken = "token",
            LockExpiresAt = 5,
            PurgeAt = 6,
        };
        record.Zombies.Add(("old", 7, "regenerated from"));
        record.Zombies.Add(("older", 8, null));
        record.Profiles.Add("profile");
        record.Values["a\0b"] = [1, 2];
        record.Values["\uD800"] = [];

        Assert.True(SessionFileFormat.TryDeserialize(SessionFileFormat.Serialize(record), out var read));

        Assert.Equivalent(record, read, strict: true);
        Assert.True(SessionFileFormat.TryReadPurgeAt(SessionFileFormat.Serialize(record), out var purgeAt));
        Assert.Equal(6, purgeAt);
    }

    [Fact]
    public void SessionFileFormat_Tombstone_RoundTrips()
    {
        var tombstone = SessionRecord.Tombstone(123);

        Assert.True(SessionFileFormat.TryDeserialize(SessionFileFormat.Serialize(tombstone), out var read));

        Assert.True(read.Destroyed);
        Assert.Null(read.LockToken);
        Assert.Equal(123, read.PurgeAt);
    }

    [Fact]
    public async Task GetAsync_WhileValueIsRewritten_NeverSeesATornValue()
    {
        const int size = 256 * 1024;
        await Cache.SetAsync("key", new byte[size], new CacheEntryExpiration(Clock.GetUtcNow(), null, null), Token);

        var writer = Task.Run(
            async () =>
            {
                for (var i = 1; i <= 100; i++)
                {
                    await Cache.SetAsync("key", Enumerable.Repeat((byte)i, size).ToArray(), new CacheEntryExpiration(Clock.GetUtcNow(), null, null), Token);
                }
            },
            Token);
        var reads = 0;
        while (!writer.IsCompleted || reads == 0)
        {
            var value = await Cache.GetAsync("key", Clock.GetUtcNow(), Token);
            Assert.NotNull(value);
            Assert.Equal(size, value.Length);
            Assert.True(value.AsSpan().IndexOfAnyExcept(value[0]) < 0, "A read saw bytes of two writes.");
            reads++;
        }

        await writer;
        output.WriteLine($"{reads} reads during 100 writes.");
    }

    [Fact]
    public async Task CommitAsync_TwoDriverInstancesOnOneDirectory_CountEveryIncrement()
    {
        var first = RealTimeSessions;
        var second = CreateDriver(TimeProvider.System);
        var key = await CreateSessionThroughAsync(first, new() { ["counter"] = BitConverter.GetBytes(0) });

        await Task.WhenAll(Enumerable.Range(0, 100).Select(i => Task.Run(() => IncrementAsync(i % 2 == 0 ? first : second, key), Token)))
            .WaitAsync(TimeSpan.FromMinutes(1), Token);

        Assert.Equal(100, BitConverter.ToInt32((await LoadAsync(second, key)).Values["counter"]));
    }

    [Fact]
    public async Task CommitAsync_TwoProcessesIncrementingOneSession_CountEveryIncrement()
    {
        var driver = RealTimeSessions;
        var key = SessionKey.New();
        var now = TimeProvider.System.GetUtcNow();
        var created = await driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                Now = now,
                IdleTimeout = Idle,
                CreateWithSecret = key.Secret,
                Changes = new Dictionary<string, byte[]?> { ["counter"] = BitConverter.GetBytes(0) },
            },
            Token);
        Assert.Equal(SessionCommitStatus.Committed, created);

        var children = new[] { StartChild(key, 100), StartChild(key, 100) };
        try
        {
            foreach (var child in children)
            {
                Assert.Equal("ready", await child.StandardOutput.ReadLineAsync(Token).AsTask().WaitAsync(TimeSpan.FromMinutes(1), Token));
            }

            foreach (var child in children)
            {
                await child.StandardInput.WriteLineAsync();
                await child.StandardInput.FlushAsync(Token);
            }

            foreach (var child in children)
            {
                await child.WaitForExitAsync(Token).WaitAsync(TimeSpan.FromMinutes(2), Token);
                var report = await child.StandardOutput.ReadToEndAsync(Token);
                var errors = await child.StandardError.ReadToEndAsync(Token);
                output.WriteLine($"child {child.Id}: exit {child.ExitCode}, {report.Trim()} {errors.Trim()}");
                Assert.True(child.ExitCode == 0, errors);
            }
        }
        finally
        {
            foreach (var child in children)
            {
                if (!child.HasExited)
                {
                    child.Kill(entireProcessTree: true);
                }

                child.Dispose();
            }
        }

        var loaded = await driver.LoadAsync(
            new SessionLoadRequest { Key = key, Now = TimeProvider.System.GetUtcNow(), IdleTimeout = Idle },
            Token);
        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal(200, BitConverter.ToInt32(loaded.Values["counter"]));
    }

    [Theory]
    [InlineData("")]
    [InlineData(".users")] // a process killed while it rewrote a user index
    [InlineData(".ends")] // ... or scheduled an end check
    public async Task SweepAsync_AbandonedTemporaryFiles_RemovedAfterAMinute(string subdirectory)
    {
        Assert.True(Directory.Exists(Driver.DirectoryPath));
        var directory = Directory.CreateDirectory(Path.Combine(StoreDirectory, subdirectory)).FullName;
        var stale = Path.Combine(directory, "stale.session.0011.tmp");
        var fresh = Path.Combine(directory, "fresh.session.0022.tmp");
        await File.WriteAllBytesAsync(stale, [1], Token);
        await File.WriteAllBytesAsync(fresh, [1], Token);
        File.SetLastWriteTimeUtc(stale, (Clock.GetUtcNow() - TimeSpan.FromMinutes(2)).UtcDateTime);
        File.SetLastWriteTimeUtc(fresh, Clock.GetUtcNow().UtcDateTime);

        Assert.Equal(0, await ((ISweepableDriver)Driver).SweepAsync(Clock.GetUtcNow(), Token));

        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(fresh));
    }

    [Fact]
    public async Task ClaimDueEndChecksAsync_AnEndCheckThatCannotBeRead_IsPassedOverAndTheOthersAreClaimed()
    {
        var ids = new[] { SessionKey.New().Id, SessionKey.New().Id };
        foreach (var id in ids)
        {
            await Driver.ScheduleEndCheckAsync(id, Clock.GetUtcNow(), Token);
        }

        // A file that fails to open (here a symbolic link to itself; a bad sector does the same) must not stop every
        // sweep from reporting any end.
        var unreadable = Path.Combine(StoreDirectory, ".ends", new string('0', 64) + ".end");
        File.CreateSymbolicLink(unreadable, unreadable);

        var claimed = await Driver.ClaimDueEndChecksAsync(Clock.GetUtcNow(), 10, Token);

        Assert.Equal(ids.Order(StringComparer.Ordinal), claimed.Order(StringComparer.Ordinal));
        Assert.NotNull(new FileInfo(unreadable).LinkTarget);
    }

    [Fact]
    public async Task SweepAsync_FilesOfAnotherFormatVersion_AreKept()
    {
        // A newer process sharing the directory may write a version this one cannot read: it must not be swept.
        var key = await CreateSessionAsync();
        await Cache.SetAsync("key", [1], new CacheEntryExpiration(Clock.GetUtcNow(), Clock.GetUtcNow() + TimeSpan.FromMinutes(1), null), Token);
        var paths = new[] { Driver.GetSessionFilePath(key.Id), Driver.GetCacheFilePath("key") };
        foreach (var path in paths)
        {
            var data = await File.ReadAllBytesAsync(path, Token);
            data[0] = 2;
            await File.WriteAllBytesAsync(path, data, Token);
        }

        Clock.Advance(TimeSpan.FromDays(30));

        Assert.Equal(0, await ((ISweepableDriver)Driver).SweepAsync(Clock.GetUtcNow(), Token));
        Assert.All(paths, path => Assert.True(File.Exists(path)));
    }

    [Fact]
    public async Task CommitAsync_NewSession_WritesOwnerOnlyFilesInOwnerOnlyDirectory()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var key = await CreateSessionAsync();

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Driver.GetSessionFilePath(key.Id)));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(StoreDirectory));
        Assert.Empty(Directory.GetFiles(StoreDirectory, "*.tmp"));
    }

    [Fact]
    public async Task TrackedSession_EverySubdirectoryAndLockFile_IsOwnerOnly()
    {
        // With a permissive umask (002), a lock directory or lock file made with the default mode would let group members
        // swap lock files; the umask of the test run (usually 022) already shows a default mode as group-readable.
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var key = await CreateSessionAsync();
        await Driver.AddToUserIndexAsync("user", key.Id, Token);
        await Driver.ScheduleEndCheckAsync(key.Id, Clock.GetUtcNow() + TimeSpan.FromMinutes(5), Token);

        var directories = Directory.GetDirectories(StoreDirectory, "*", SearchOption.AllDirectories);
        Assert.Equal([".ends", ".locks", ".users"], directories.Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (var directory in directories)
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(directory));
        }

        var files = Directory.GetFiles(StoreDirectory, "*", SearchOption.AllDirectories);
        Assert.Contains(files, file => file.EndsWith(".lock", StringComparison.Ordinal));
        foreach (var file in files)
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }
    }

    [Theory]
    [InlineData(UnixFileMode.OtherWrite)]
    [InlineData(UnixFileMode.GroupWrite)]
    public async Task Restart_DirectoryOthersMayWrite_NothingIsReadOrWrittenUntilItIsPrivateAgain(UnixFileMode opened)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var key = await CreateSessionAsync(new() { ["a"] = [1] });
        await Cache.SetAsync("entry", [1], Never(), Token);

        // The app starts again and finds its directory opened up, as one that another user made first in a
        // world-writable parent (/tmp) would be: whatever is in it may have been planted.
        var owner = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        File.SetUnixFileMode(StoreDirectory, owner | UnixFileMode.GroupRead | UnixFileMode.GroupExecute
            | UnixFileMode.OtherRead | UnixFileMode.OtherExecute | opened);
        var restarted = new FileSystemDriver(
            Options.Create(new FileSystemDriverOptions { Directory = StoreDirectory }), Clock, NullLogger<FileSystemDriver>.Instance);

        var refused = await Assert.ThrowsAsync<UnauthorizedAccessException>(() => LoadAsync(restarted, key));
        Assert.Contains("may be written by other users", refused.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<UnauthorizedAccessException>(() => LoadAsync(restarted, key, SessionLease.Create(LeaseDuration)));
        await Assert.ThrowsAsync<UnauthorizedAccessException>(() => CreateSessionThroughAsync(restarted));
        await Assert.ThrowsAsync<UnauthorizedAccessException>(async () => await restarted.GetAsync("entry", Clock.GetUtcNow(), Token));
        await Assert.ThrowsAsync<UnauthorizedAccessException>(async () => await restarted.GetUserIndexAsync("ada", Token));
        var health = await restarted.CheckHealthAsync(HealthContext());
        Assert.Equal(HealthStatus.Unhealthy, health.Status);
        Assert.Contains("may be written by other users", health.Description, StringComparison.Ordinal);

        File.SetUnixFileMode(StoreDirectory, owner);
        Assert.Equal([1], (await LoadAsync(restarted, key)).Values["a"]);
        Assert.Equal([1], await restarted.GetAsync("entry", Clock.GetUtcNow(), Token));
        Assert.Equal(HealthStatus.Healthy, (await restarted.CheckHealthAsync(HealthContext())).Status);
    }

    [Fact]
    public async Task Restart_DirectoryAnotherUserOwns_NothingIsReadOrWrittenUntilItIsTheAppUsersAgain()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var key = await CreateSessionAsync(new() { ["a"] = [1] });

        // The app starts again and finds its directory owned by another user, as one that user made first in a
        // world-writable parent (/tmp) would be: private as its mode is, its owner may plant files there at any time.
        var ours = Path.Combine(Path.GetTempPath(), $"asm-owner-{Guid.NewGuid():N}");
        await File.WriteAllBytesAsync(ours, [], Token);
        try
        {
            Chown("65534", StoreDirectory);
            var restarted = new FileSystemDriver(
                Options.Create(new FileSystemDriverOptions { Directory = StoreDirectory }), Clock, NullLogger<FileSystemDriver>.Instance);

            var refused = await Assert.ThrowsAsync<UnauthorizedAccessException>(() => LoadAsync(restarted, key));
            Assert.Contains("belongs to another user (uid 65534", refused.Message, StringComparison.Ordinal);
            await Assert.ThrowsAsync<UnauthorizedAccessException>(() => CreateSessionThroughAsync(restarted));
            var health = await restarted.CheckHealthAsync(HealthContext());
            Assert.Equal(HealthStatus.Unhealthy, health.Status);
            Assert.Contains("belongs to another user", health.Description, StringComparison.Ordinal);

            Chown($"--reference={ours}", StoreDirectory);
            Assert.Equal([1], (await LoadAsync(restarted, key)).Values["a"]);
            Assert.Equal(HealthStatus.Healthy, (await restarted.CheckHealthAsync(HealthContext())).Status);
        }
        finally
        {
            Chown($"--reference={ours}", StoreDirectory);
            File.Delete(ours);
        }
    }

    /// <summary>Runs <c>chown</c>, which needs root (as CI and the development machines have); elsewhere fails saying so.</summary>
    private static void Chown(string owner, string path)
    {
        using var chown = Process.Start(new ProcessStartInfo("chown", [owner, path]) { UseShellExecute = false, RedirectStandardError = true })!;
        var error = chown.StandardError.ReadToEnd();
        chown.WaitForExit();
        Assert.True(chown.ExitCode == 0, $"This test gives a directory to another user with chown, which needs root: {error}");
    }

    private static HealthCheckContext HealthContext() => new()
    {
        Registration = new HealthCheckRegistration("asm", _ => null!, HealthStatus.Unhealthy, tags: null),
    };

    [Fact]
    public async Task CommitAsync_Durable_EveryWriteReadsBackAndLeavesNoTemporaryFile()
    {
        var durable = new FileSystemDriver(
            Options.Create(new FileSystemDriverOptions { Directory = StoreDirectory, Durable = true }),
            Clock,
            NullLogger<FileSystemDriver>.Instance);
        var key = await CreateSessionThroughAsync(durable, new() { ["a"] = [1] });

        Assert.Equal(SessionCommitStatus.Committed, await CommitAsync(durable, key, new() { ["a"] = [2] }));
        await durable.SetAsync("entry", [3], Never(), Token);

        Assert.Equal([2], (await LoadAsync(Sessions, key)).Values["a"]);
        Assert.Equal([3], await Cache.GetAsync("entry", Clock.GetUtcNow(), Token));
        Assert.Empty(Directory.GetFiles(StoreDirectory, "*.tmp"));
    }

    [Fact]
    public async Task CommitAsync_DirectoryDeletedWhileRunning_CreatesItAgainAndStoresNewSessions()
    {
        var before = await CreateSessionAsync(new() { ["a"] = [1] });
        await Cache.SetAsync("entry", [1], Never(), Token);

        // A cleaner (or an operator) removes the whole directory, its lock files included, while the app runs.
        Directory.Delete(StoreDirectory, recursive: true);

        Assert.Equal(SessionLoadStatus.Unknown, (await LoadAsync(before)).Status);
        var after = await CreateSessionAsync(new() { ["b"] = [2] });
        Assert.Equal([2], (await LoadAsync(after, SessionLease.Create(LeaseDuration))).Values["b"]);
        await Cache.SetAsync("entry", [3], Never(), Token);
        Assert.Equal([3], await Cache.GetAsync("entry", Clock.GetUtcNow(), Token));
        Assert.True(Directory.Exists(Path.Combine(StoreDirectory, ".locks")));
    }

    [Fact]
    public async Task CommitAsync_DirectoryRecreatedByHandWithoutItsLocks_StoresSessions()
    {
        await CreateSessionAsync();
        Directory.Delete(StoreDirectory, recursive: true);
        Directory.CreateDirectory(StoreDirectory);

        var key = await CreateSessionAsync(new() { ["b"] = [2] });

        Assert.Equal([2], (await LoadAsync(key, SessionLease.Create(LeaseDuration))).Values["b"]);
    }

    [Theory]
    [InlineData("emptied")]
    [InlineData("header overwritten")]
    public async Task AddToUserIndexAsync_IndexFileDamaged_KeepsTheIdsStillInItAndIndexesTheNewOne(string damage)
    {
        var kept = SessionKey.New().Id;
        var lost = SessionKey.New().Id;
        await Driver.AddToUserIndexAsync("ada", lost, Token);
        await Driver.AddToUserIndexAsync("ada", kept, Token);
        var path = Directory.GetFiles(Path.Combine(StoreDirectory, ".users")).Single();
        await File.WriteAllTextAsync(path, damage == "emptied" ? "" : $"\0\0\0\0\0\0\n{kept}\n{lost[..5]}", Token);

        // A user whose index file was damaged can still sign in; the ids the file still names stay indexed.
        var added = SessionKey.New().Id;
        await Driver.AddToUserIndexAsync("ada", added, Token);

        var expected = damage == "emptied" ? new[] { added } : [kept, added];
        Assert.Equal(expected.Order(StringComparer.Ordinal), (await Driver.GetUserIndexAsync("ada", Token)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task AddToUserIndexAsync_OfAnIdTheDamagedIndexStillHolds_RewritesTheFileWhole()
    {
        var kept = SessionKey.New().Id;
        await Driver.AddToUserIndexAsync("ada", kept, Token);
        var path = Directory.GetFiles(Path.Combine(StoreDirectory, ".users")).Single();
        await File.WriteAllTextAsync(path, $"\0\0\0\0\0\0\n{kept}", Token);

        await Driver.AddToUserIndexAsync("ada", kept, Token);

        Assert.Equal(["asm-users 1", kept], (await File.ReadAllTextAsync(path, Token)).Split('\n'));
    }

    [Fact]
    public async Task GetUserIndexAsync_IndexOfAnotherFormatVersion_IsRefusedNeverMisread()
    {
        await Driver.AddToUserIndexAsync("ada", SessionKey.New().Id, Token);
        var path = Directory.GetFiles(Path.Combine(StoreDirectory, ".users")).Single();
        var text = await File.ReadAllTextAsync(path, Token);
        await File.WriteAllTextAsync(path, text.Replace("asm-users 1", "asm-users 2", StringComparison.Ordinal), Token);

        await Assert.ThrowsAsync<IOException>(async () => await Driver.GetUserIndexAsync("ada", Token));
        await Assert.ThrowsAsync<IOException>(async () => await Driver.AddToUserIndexAsync("ada", SessionKey.New().Id, Token));
    }

    [Theory]
    [InlineData("full")]
    [InlineData("read-only")]
    public async Task GetAsync_SlidingEntryOnADiskThatTakesNoWrites_ReturnsTheValueAndSlidesAgainOnceItDoes(string fault)
    {
        using var disk = SmallDisk.Mount(1024);
        var driver = new FileSystemDriver(
            Options.Create(new FileSystemDriverOptions { Directory = Path.Combine(disk.Path, "store") }),
            Clock,
            NullLogger<FileSystemDriver>.Instance);
        await driver.SetAsync("key", [1, 2], new CacheEntryExpiration(Clock.GetUtcNow(), null, TimeSpan.FromMinutes(10)), Token);
        if (fault == "full")
        {
            disk.Fill();
        }
        else
        {
            disk.SetReadOnly(true);
        }

        // A read is served as the session's read is: only the slide is not stored.
        Clock.Advance(TimeSpan.FromMinutes(8));
        Assert.Equal([1, 2], await driver.GetAsync("key", Clock.GetUtcNow(), Token));
        await Assert.ThrowsAnyAsync<IOException>(async () => await driver.RefreshAsync("key", Clock.GetUtcNow(), Token));

        if (fault == "full")
        {
            disk.Free();
        }
        else
        {
            disk.SetReadOnly(false);
        }

        Assert.Equal([1, 2], await driver.GetAsync("key", Clock.GetUtcNow(), Token));
        Clock.Advance(TimeSpan.FromMinutes(8));
        Assert.Equal([1, 2], await driver.GetAsync("key", Clock.GetUtcNow(), Token));
    }

    [Fact]
    public void DirectorySync_MissingDirectory_ThrowsIOExceptionNamingIt()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var missing = Path.Combine(_root, "missing");

        var thrown = Assert.Throws<IOException>(() => DirectorySync.Flush(missing));

        Assert.Contains(missing, thrown.Message, StringComparison.Ordinal);
    }

    private Process StartChild(SessionKey key, int increments)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(ChildPath);
        start.ArgumentList.Add(StoreDirectory);
        start.ArgumentList.Add(key.Id);
        start.ArgumentList.Add(key.Secret);
        start.ArgumentList.Add(increments.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return OwnedProcess.Start(start);
    }

    /// <summary>The child's build output, named by the test project (which builds it without referencing it).</summary>
    private static string ChildPath
    {
        get
        {
            var path = typeof(FileSystemDriverTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .Single(a => a.Key == "Asm.FileLockChild.Path").Value!;
            Assert.True(File.Exists(path), $"Build test/Asm.FileLockChild first: {path} is missing.");
            return path;
        }
    }

    [GeneratedRegex("^[0-9a-f]{64}\\.cache$")]
    private static partial Regex CacheFileName();

    [GeneratedRegex("^[0-9a-f]{2}\\.lock$")]
    private static partial Regex LockFileName();
}
