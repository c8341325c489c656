using System.Net;
using Asm.Testing.Faults;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Asm.Caching;
using Asm.Caching.Drivers.FileSystem;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Tests.Identity;
using Asm.SessionAdapter.Tests.Import;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.Failures;

/// <summary>
/// The filesystem driver on a real disk that fills up or turns read-only (a small tmpfs the test mounts): clear
/// errors per request, the stored session as it was, reads still served, and everything working again once the
/// disk does.
/// </summary>
public sealed class FileSystemFaultTests : IDisposable
{
    private readonly SmallDisk _disk = SmallDisk.Mount(kilobytes: 1024);
    private Exception? _thrown;

    private string Sessions => Path.Combine(_disk.Path, "sessions");

    [Fact]
    public async Task DiskFull_CommitFailsClearlyPreviousFileIntactAndWorksAgainWhenSpaceReturns()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await SetAsync(client, "exclusive", "kept");
        var before = SessionFiles();
        _disk.Fill();

        // A write without a lock: its load needs no write, its commit fails.
        var lockless = await client.PostAsync("/lockless/set?value=lost", null);
        // A write under the lock: taking the lock is a write, so the load fails.
        var exclusive = await client.PostAsync("/exclusive/set?value=lost", null);
        var read = await client.GetStringAsync("/read");

        Assert.Equal(HttpStatusCode.InternalServerError, lockless.StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, exclusive.StatusCode);
        var thrown = Assert.IsType<SessionStorageException>(_thrown);
        Assert.StartsWith("Failed loading session ", thrown.Message, StringComparison.Ordinal);
        Assert.Contains("No space left on device", thrown.Message, StringComparison.Ordinal);
        Assert.Equal("kept", read);
        Assert.Equal(before, SessionFiles());

        _disk.Free();

        await SetAsync(client, "exclusive", "after");
        Assert.Equal("after", await client.GetStringAsync("/read"));
        await SetAsync(client, "lockless", "again");
        Assert.Equal("again", await client.GetStringAsync("/read"));
    }

    [Fact]
    public async Task DiskFull_LocklessCommit_FailsWithSessionStorageExceptionNamingTheCause()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await SetAsync(client, "exclusive", "kept");
        var before = SessionFiles();
        _disk.Fill();

        var response = await client.PostAsync("/lockless/set?value=lost", null);

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var thrown = Assert.IsType<SessionStorageException>(_thrown);
        Assert.StartsWith("Failed committing session ", thrown.Message, StringComparison.Ordinal);
        Assert.Contains("No space left on device", thrown.Message, StringComparison.Ordinal);
        Assert.Equal(before, SessionFiles());
    }

    [Fact]
    public async Task DiskFull_LogOutOfOtherDevicesAndOwnLogOut_EndEverySession()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var app = await StartAsync(
            time: time,
            services: s => s.Configure<SweepOptions>(o => o.Interval = TimeSpan.FromDays(1)));
        var devices = new[] { app.CreateClient(), app.CreateClient(), app.CreateClient(), app.CreateClient() };
        var ids = new List<string>();
        foreach (var device in devices)
        {
            ids.Add(await (await device.PostAsync("/bind", null)).EnsureSuccessStatusCode().Content.ReadAsStringAsync());

            // The first device's session is past its 20-minute idle timeout when the others log it out: the listing ends it.
            time.Advance(ids.Count == 1 ? TimeSpan.FromMinutes(15) : TimeSpan.FromMinutes(2));
        }

        _disk.Fill();

        // Ending a session must not fail for want of space, or a stolen session stays usable until the disk is freed.
        var ended = await app.Services.GetRequiredService<IAsmSessionManager>().DestroyUserSessionsAsync("ada", exceptSessionId: ids[1]);
        var logOut = await devices[1].PostAsync("/lockless/destroy", null);

        Assert.Equal(2, ended);
        Assert.Equal(HttpStatusCode.OK, logOut.StatusCode);
        foreach (var device in devices)
        {
            Assert.Equal("", await device.GetStringAsync("/read"));
        }

        _disk.Free();

        await SetAsync(devices[1], "exclusive", "after");
        Assert.Equal("after", await devices[1].GetStringAsync("/read"));
    }

    [Fact]
    public async Task DiskReadOnly_WritesFailClearlyReadsServedAndWorksAgainWhenWritable()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await SetAsync(client, "exclusive", "kept");
        var before = SessionFiles();
        _disk.SetReadOnly(true);

        var exclusive = await client.PostAsync("/exclusive/set?value=lost", null);
        var read = await client.GetStringAsync("/read");
        var created = await app.CreateClient().PostAsync("/exclusive/set?value=new", null);

        Assert.Equal(HttpStatusCode.InternalServerError, exclusive.StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, created.StatusCode);
        var thrown = Assert.IsType<SessionStorageException>(_thrown);
        Assert.Contains("Read-only file system", thrown.Message, StringComparison.Ordinal);
        Assert.Equal("kept", read);
        Assert.Equal(before, SessionFiles());

        _disk.SetReadOnly(false);

        await SetAsync(client, "exclusive", "after");
        Assert.Equal("after", await client.GetStringAsync("/read"));
    }

    [Fact]
    public async Task DiskReadOnlyAtStartUp_HealthCheckUnhealthyNamingTheDirectoryAndTheCause_WritesFailClearly()
    {
        // The directory an earlier server used; the disk turns read-only before this server starts.
        await using var earlier = await StartAsync();
        var earlierClient = earlier.CreateClient(out var jar);
        await SetAsync(earlierClient, "exclusive", "kept");
        _disk.SetReadOnly(true);
        await using var app = await StartAsync(health: true, services: s => SessionApp.ShareDataProtection(s, earlier.Services));
        var client = app.CreateClient(out var appJar);
        appJar.Cookies.Add(jar.Cookies.GetAllCookies());

        var down = await CheckHealthAsync(app);
        var write = await client.PostAsync("/exclusive/set?value=lost", null);
        var read = await client.GetStringAsync("/read");

        Assert.Equal(HealthStatus.Unhealthy, down.Status);
        Assert.Contains($"The session directory {Sessions} is not writable", down.Description, StringComparison.Ordinal);
        Assert.Contains("Read-only file system", down.Description, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.InternalServerError, write.StatusCode);
        var thrown = Assert.IsType<SessionStorageException>(_thrown);
        Assert.StartsWith("Failed loading session ", thrown.Message, StringComparison.Ordinal);
        Assert.Contains("Read-only file system", thrown.Message, StringComparison.Ordinal);
        Assert.Equal("kept", read);

        _disk.SetReadOnly(false);

        Assert.Equal(HealthStatus.Healthy, (await CheckHealthAsync(app)).Status);
        await SetAsync(client, "exclusive", "after");
        Assert.Equal("after", await client.GetStringAsync("/read"));
    }

    [Fact]
    public async Task DirectoryNotCreatableAtStartUp_HealthCheckUnhealthyNamingTheDirectoryAndTheCause_RequestsFailClearly()
    {
        _disk.SetReadOnly(true);
        await using var app = await StartAsync(health: true);

        var down = await CheckHealthAsync(app);
        var write = await app.CreateClient().PostAsync("/exclusive/set?value=lost", null);

        Assert.Equal(HealthStatus.Unhealthy, down.Status);
        Assert.Contains(Sessions, down.Description, StringComparison.Ordinal);
        Assert.Contains("Read-only file system", down.Description, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.InternalServerError, write.StatusCode);
        var thrown = Assert.IsType<SessionStorageException>(_thrown);
        Assert.Contains("Read-only file system", thrown.Message, StringComparison.Ordinal);

        _disk.SetReadOnly(false);

        Assert.Equal(HealthStatus.Healthy, (await CheckHealthAsync(app)).Status);
        await SetAsync(app.CreateClient(), "exclusive", "after");
    }

    /// <summary>
    /// Something other than a file planted at a session's path (by the app's own user, or a misconfiguration): a FIFO,
    /// whose ordinary open blocks until a writer comes, or a directory, whose open fails. Either reads as a damaged
    /// record, as a corrupt file does: the request gets a fresh session, never a hang or a 500, and the path is logged.
    /// </summary>
    [Theory]
    [InlineData("fifo")]
    [InlineData("directory")]
    public async Task SessionPathHoldsAFifoOrADirectory_RequestsGetAFreshSession_AndItIsLoggedAsDamaged(string planted)
    {
        var logs = new FakeLogCollector();
        var events = new RecordingSessionEvents();
        await using var app = await StartAsync(
            services: s => s.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs)),
            configure: o => o.Events = events);
        var client = app.CreateClient(out var jar);
        await SetAsync(client, "exclusive", "kept");
        var path = SessionFileOf(app, jar);
        File.Delete(path);
        if (planted == "fifo")
        {
            FaultCommand.Run("mkfifo", path);
        }
        else
        {
            Directory.CreateDirectory(path);
        }

        var read = await client.GetStringAsync("/read").WaitAsync(TimeSpan.FromSeconds(30));
        var written = await client.PostAsync("/exclusive/set?value=new", null).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal("", read);
        Assert.Equal(HttpStatusCode.OK, written.StatusCode);
        Assert.Equal("new", await client.GetStringAsync("/read"));
        Assert.Null(_thrown);
        Assert.Equal([("/read", InvalidSessionReason.Corrupt)], events.Invalid);
        Assert.Contains(logs.GetSnapshot(), r => r.Id.Id == 210 && r.Message.Contains(planted == "fifo" ? "FIFO" : "directory", StringComparison.Ordinal));
        Assert.True(planted == "fifo" ? File.Exists(path) : Directory.Exists(path));
    }

    public void Dispose() => _disk.Dispose();

    /// <summary>The path of the session file of the browser whose cookies <paramref name="jar"/> holds.</summary>
    private static string SessionFileOf(SessionApp app, CookieJarHandler jar)
    {
        Assert.True(SessionKey.TryParse(StockApp.KeyOf(app.Services, jar), out var key));
        return app.Services.GetRequiredService<FileSystemDriver>().GetSessionFilePath(key.Id);
    }

    /// <summary>The session files and their bytes (lock files and the filler aside).</summary>
    private SortedDictionary<string, string> SessionFiles() =>
        new(Directory.EnumerateFiles(Sessions, "*", SearchOption.TopDirectoryOnly)
            .ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(File.ReadAllBytes(f))), StringComparer.Ordinal);

    private static async Task SetAsync(HttpClient client, string mode, string value) =>
        (await client.PostAsync($"/{mode}/set?value={value}", null)).EnsureSuccessStatusCode();

    private Task<SessionApp> StartAsync(
        bool health = false,
        Action<IServiceCollection>? services = null,
        TimeProvider? time = null,
        Action<AsmSessionOptions>? configure = null) => SessionApp.StartAsync(
        b => b.UseFileSystemDriver(Sessions),
        Map,
        configure,
        time: time,
        services: s =>
        {
            services?.Invoke(s);
            if (health)
            {
                s.AddHealthChecks().AddAsmSessionStorage();
            }
        });

    private static async Task<HealthReportEntry> CheckHealthAsync(SessionApp app) =>
        (await app.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries[AsmStorageHealthChecksBuilderExtensions.DefaultName];

    private void Map(WebApplication app)
    {
        app.AnswerExceptionsWith500(ex => _thrown = ex);
        app.MapGet("/read", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString("v") ?? "";
        }).WithSessionLock(SessionLockMode.ReadOnly);
        app.MapPost("/exclusive/set", SetValue).WithSessionLock(SessionLockMode.Exclusive);
        app.MapPost("/lockless/set", SetValue).WithSessionLock(SessionLockMode.Lockless);
        app.MapPost("/lockless/destroy", (HttpContext c) => c.Session.DestroyAsync()).WithSessionLock(SessionLockMode.Lockless);
        app.MapPost("/bind", async (HttpContext c) =>
        {
            await c.Session.BindUserAsync("ada");
            c.Session.SetString("v", "signed in");
            return c.Session.Id;
        });
    }

    private static async Task SetValue(HttpContext c, string value)
    {
        await c.Session.LoadAsync();
        c.Session.SetString("v", value);
        await c.Session.CommitAsync();
    }
}
