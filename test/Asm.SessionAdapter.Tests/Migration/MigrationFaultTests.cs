using System.Diagnostics.Metrics;
using Asm.Caching.Drivers.FileSystem;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Migration;
using Asm.SessionAdapter.Tests.Import;
using Asm.Testing.Cleanup;
using Asm.Testing.Drivers;
using Asm.Testing.Faults;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.Migration;

/// <summary>
/// Moves between two filesystem drivers whose previous storage fails on a real fault the test makes (a session file
/// made immutable at the step it means, a disk mounted read-only).
/// </summary>
public sealed class MigrationFaultTests : IDisposable
{
    private static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);
    private static readonly TimeSpan MoveLease = TimeSpan.FromSeconds(30);
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly FakeLogCollector _logs = new();
    private readonly List<IDisposable> _faults = [];
    private readonly string _root = TestDirectories.Create("asm-move-");

    /// <summary>
    /// The previous copy's file turns immutable once the new copy is stored: ending the previous copy fails. The new
    /// copy is taken back, so the session lives in one place (the previous one, served as before), and it moves once
    /// the previous storage takes writes again.
    /// </summary>
    [Fact]
    public async Task MoveAsync_PreviousCopyCannotBeEnded_TakesTheNewCopyBack_AndMovesOnceThePreviousStorageWorks()
    {
        var previous = FileSystem(Path.Combine(_root, "previous"));
        var key = await CreateAsync(previous);
        var current = new AfterImport(FileSystem(Path.Combine(_root, "current")), () => _faults.Add(ImmutableFile.Set(previous.GetSessionFilePath(key.Id))));
        var migrating = Migrating(current, previous);

        await Assert.ThrowsAnyAsync<Exception>(() => migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None).AsTask());

        Assert.Equal(SessionLoadStatus.Unknown, (await current.LoadAsync(Request(key), CancellationToken.None)).Status);
        Assert.Equal(SessionLoadStatus.Found, (await previous.LoadAsync(Request(key), CancellationToken.None)).Status);
        Assert.Single(_logs.GetSnapshot(), r => r.Id.Id == 49);

        // The previous storage works again; the lock the failed move took there ends with its lease.
        _faults.ForEach(f => f.Dispose());
        _time.Advance(MoveLease);

        Assert.Equal(SessionLoadStatus.Found, await migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None));
        Assert.Equal(SessionLoadStatus.Found, (await current.LoadAsync(Request(key), CancellationToken.None)).Status);
        Assert.Equal(SessionLoadStatus.Destroyed, (await previous.LoadAsync(Request(key), CancellationToken.None)).Status);
    }

    /// <summary>
    /// The previous driver's disk is mounted read-only on the new servers (to keep it as it was, or by a fault): nobody
    /// can lock, change or end what it holds, so its sessions are copied as they stand and served from the new driver,
    /// their files are left byte for byte, and a log-out of every device on the new server ends them.
    /// </summary>
    [Fact]
    public async Task PreviousDiskReadOnly_SessionsAreCopiedAndServed_TheirFilesLeftAsTheyAre_AndLogOutEndsThem()
    {
        using var disk = SmallDisk.Mount(kilobytes: 1024);
        var old = Path.Combine(disk.Path, "sessions");
        await using var before = await SessionApp.StartAsync(b => b.UseFileSystemDriver(old), Map);
        var user = before.CreateClient(out var jar);
        (await user.PostAsync("/set?name=user&value=alice", null)).EnsureSuccessStatusCode();
        (await user.PostAsync("/bind?user=ada", null)).EnsureSuccessStatusCode();
        var files = FilesOf(old);
        disk.SetReadOnly(true);
        await using var after = await SessionApp.StartAsync(
            b => b.UseFileSystemDriver(Path.Combine(_root, "current")).MigrateFrom(previous => previous.UseFileSystemDriver(old)),
            Map,
            services: s =>
            {
                SessionApp.ShareDataProtection(s, before.Services);
                s.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(_logs));
            });
        var client = after.CreateClient(out var afterJar);
        afterJar.Cookies.Add(jar.Cookies.GetAllCookies());

        Assert.Equal("alice", await client.GetStringAsync("/get-readonly?name=user"));
        Assert.Equal("alice", await client.GetStringAsync("/get?name=user"));
        (await client.PostAsync("/set?name=user&value=bob", null)).EnsureSuccessStatusCode();
        Assert.Equal("bob", await client.GetStringAsync("/get?name=user"));
        Assert.Equal(files, FilesOf(old));
        Assert.Single(_logs.GetSnapshot(), r => r.Id.Id == 53);

        Assert.Equal(1, await after.Services.GetRequiredService<IAsmSessionManager>().DestroyUserSessionsAsync("ada"));
        Assert.Equal("-", await client.GetStringAsync("/get?name=user"));
        Assert.Equal(files, FilesOf(old));
    }

    /// <summary>
    /// Every session of a read-only previous disk is copied so: that the disk is read-only is said once, as a warning,
    /// not once a session (a flood on a large store); each copy is a debug line.
    /// </summary>
    [Fact]
    public async Task PreviousDiskReadOnly_ManySessionsMoved_TheWarningIsLoggedOnce()
    {
        using var disk = SmallDisk.Mount(kilobytes: 1024);
        var previous = FileSystem(Path.Combine(disk.Path, "sessions"));
        var keys = new[] { await CreateAsync(previous), await CreateAsync(previous), await CreateAsync(previous) };
        disk.SetReadOnly(true);
        var migrating = Migrating(FileSystem(Path.Combine(_root, "current")), previous);

        foreach (var key in keys)
        {
            Assert.Equal(SessionLoadStatus.Found, await migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None));
        }

        Assert.Single(_logs.GetSnapshot(), r => r.Id.Id == 53 && r.Level == LogLevel.Warning);
        Assert.Equal(3, _logs.GetSnapshot().Count(r => r.Id.Id == 56 && r.Level == LogLevel.Debug));
    }

    /// <summary>
    /// A session copied from a read-only previous disk is logged out on the new server, whose tombstone is shorter than
    /// the previous copy's life (a migration that also shortened IdleTimeout): its old cookie must not move that copy
    /// again once the tombstone would have been purged, while the copy is live there.
    /// </summary>
    [Fact]
    public async Task PreviousDiskReadOnly_LoggedOutSession_IsNotMovedAgainWhileItsPreviousCopyLives()
    {
        using var disk = SmallDisk.Mount(kilobytes: 1024);
        var previous = FileSystem(Path.Combine(disk.Path, "sessions"));
        var key = await CreateAsync(previous);
        disk.SetReadOnly(true);
        var current = FileSystem(Path.Combine(_root, "current"));
        var migrating = Migrating(current, previous);
        Assert.Equal(SessionLoadStatus.Found, await migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None));

        // The new options' tombstone: max(IdleTimeout, ZombieLifetime), five minutes where the previous copy has twenty.
        await migrating.DestroyAsync(key.Id, _time.GetUtcNow(), _time.GetUtcNow() + TimeSpan.FromMinutes(5), CancellationToken.None);
        _time.Advance(TimeSpan.FromMinutes(10));
        await current.SweepAsync(_time.GetUtcNow(), CancellationToken.None);

        Assert.Equal(SessionLoadStatus.Destroyed, (await migrating.LoadAsync(Request(key), CancellationToken.None)).Status);

        // Once the previous copy has ended by itself, the tombstone may go: that copy is expired, never moved again.
        _time.Advance(Idle);
        await current.SweepAsync(_time.GetUtcNow(), CancellationToken.None);

        Assert.NotEqual(SessionLoadStatus.Found, await migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None));
        Assert.NotEqual(SessionLoadStatus.Found, (await migrating.LoadAsync(Request(key), CancellationToken.None)).Status);
    }

    /// <summary>
    /// A log-out looks for the session's end check in the previous driver when the new one has none (a second log-out,
    /// a session locked there): on a read-only previous disk there is none to take, instead of a failed log-out.
    /// </summary>
    [Fact]
    public async Task ClaimPreviousEndCheckAsync_PreviousDiskReadOnly_ClaimsNothing()
    {
        using var disk = SmallDisk.Mount(kilobytes: 1024);
        var previous = FileSystem(Path.Combine(disk.Path, "sessions"));
        var key = await CreateAsync(previous);
        await previous.ScheduleEndCheckAsync(key.Id, _time.GetUtcNow() + Idle, CancellationToken.None);
        disk.SetReadOnly(true);
        var migrating = Migrating(FileSystem(Path.Combine(_root, "current")), previous);

        Assert.False(await migrating.ClaimPreviousEndCheckAsync(key.Id, CancellationToken.None));
        Assert.False(await migrating.ClaimPreviousEndCheckAsync(SessionKey.New().Id, CancellationToken.None));
    }

    public void Dispose()
    {
        _faults.ForEach(f => f.Dispose());
        _metrics.Dispose();
        TestDirectories.Delete(_root);
    }

    /// <summary>The files of a session directory and their bytes (lock files aside).</summary>
    private static SortedDictionary<string, string> FilesOf(string directory) =>
        new(Directory.EnumerateFiles(directory, "*", SearchOption.TopDirectoryOnly)
            .ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(File.ReadAllBytes(f))), StringComparer.Ordinal);

    private static void Map(WebApplication app)
    {
        StockApp.MapRoutes(app);
        app.MapPost("/bind", (HttpContext c, string user) => c.Session.BindUserAsync(user));
    }

    private MigratingSessionDriver Migrating(ISessionDriver current, ISessionDriver previous) => new(
        current,
        previous,
        _time,
        new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>()),
        new FakeLogger(_logs),
        MoveLease,
        TimeSpan.FromSeconds(5));

    private FileSystemDriver FileSystem(string directory) =>
        new(Options.Create(new FileSystemDriverOptions { Directory = directory }), _time, NullLogger<FileSystemDriver>.Instance);

    private async Task<SessionKey> CreateAsync(FileSystemDriver driver)
    {
        var key = SessionKey.New();
        Assert.Equal(
            SessionCommitStatus.Committed,
            await driver.CommitAsync(
                new SessionCommitRequest
                {
                    SessionId = key.Id,
                    Now = _time.GetUtcNow(),
                    IdleTimeout = Idle,
                    CreateWithSecret = key.Secret,
                    Changes = new Dictionary<string, byte[]?> { ["a"] = [1] },
                },
                CancellationToken.None));
        return key;
    }

    private SessionLoadRequest Request(SessionKey key) => new() { Key = key, Now = _time.GetUtcNow(), IdleTimeout = Idle };

    /// <summary>The new driver, which runs <paramref name="fault"/> once its first import is stored.</summary>
    private sealed class AfterImport(FileSystemDriver inner, Action fault) : ForwardingSessionDriver<FileSystemDriver>(inner)
    {
        private int _imports;

        public override async ValueTask<bool> ImportAsync(SessionSnapshot snapshot, DateTimeOffset now, CancellationToken cancellationToken)
        {
            var stored = await Inner.ImportAsync(snapshot, now, cancellationToken);
            if (Interlocked.Increment(ref _imports) == 1)
            {
                fault();
            }

            return stored;
        }
    }
}
