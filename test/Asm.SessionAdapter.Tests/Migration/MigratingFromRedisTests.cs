using System.Diagnostics.Metrics;
using System.Text;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Migration;
using Asm.Testing.Redis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter.Tests.Migration;

/// <summary>
/// A session moved out of a Redis driver while another app holds its lock there: only a request that waits for the
/// lock joins the lock's waiting line, so that a release never keeps the lock for a caller that skipped the session.
/// </summary>
public sealed class MigratingFromRedisTests : IAsyncLifetime
{
    private static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    private readonly RedisServer _server = new();
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly string _instance = $"asm-test:{Guid.NewGuid():N}:";
    private readonly List<RedisDriver> _drivers = [];

    public Task InitializeAsync() => _server.StartAsync();

    public Task DisposeAsync()
    {
        _drivers.ForEach(d => d.Dispose());
        _metrics.Dispose();
        _server.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task SessionLockedByAnotherApp_OnlyALockingRequestJoinsTheLine_NotALocklessReadOrTheMover()
    {
        var holder = Redis();
        var previous = Redis();
        var migrating = new MigratingSessionDriver(
            new InMemoryDriver(TimeProvider.System), previous, TimeProvider.System,
            new AsmSessionMetrics(_metrics.GetRequiredService<IMeterFactory>()), NullLogger.Instance, Lease, TimeSpan.FromSeconds(5));
        var key = SessionKey.New();
        Assert.Equal(
            SessionCommitStatus.Committed,
            await holder.CommitAsync(
                new SessionCommitRequest { SessionId = key.Id, Now = TimeProvider.System.GetUtcNow(), IdleTimeout = Idle, CreateWithSecret = key.Secret },
                CancellationToken.None));
        Assert.Equal(SessionLoadStatus.Found, (await holder.LoadAsync(Request(key, locking: true), CancellationToken.None)).Status);
        var line = _instance + "w:{" + key.Id + "}";

        // A lockless read is served the previous copy; the mover skips the session.
        Assert.Equal(SessionLoadStatus.Found, (await migrating.LoadAsync(Request(key, locking: false), CancellationToken.None)).Status);
        Assert.Equal(SessionLoadStatus.LockBusy, await migrating.MoveAsync(key.Id, waitIfBusy: false, CancellationToken.None));
        Assert.Equal(0L, await _server.ExecuteAsync("EXISTS", line));

        // A locking request waits, in line, to be woken by the release.
        Assert.Equal(SessionLoadStatus.LockBusy, (await migrating.LoadAsync(Request(key, locking: true), CancellationToken.None)).Status);
        var queued = (object?[])(await _server.ExecuteAsync("ZRANGE", line, "0", "-1"))!;
        Assert.Equal([previous.Party], queued.Select(party => Encoding.UTF8.GetString((byte[])party!)));
    }

    private RedisDriver Redis()
    {
        var driver = new RedisDriver(
            Options.Create(new RedisDriverOptions { Configuration = _server.EndPoint, InstanceName = _instance }),
            TimeProvider.System,
            NullLogger<RedisDriver>.Instance);
        _drivers.Add(driver);
        return driver;
    }

    private static SessionLoadRequest Request(SessionKey key, bool locking) => new()
    {
        Key = key,
        Now = TimeProvider.System.GetUtcNow(),
        IdleTimeout = Idle,
        Lease = locking ? SessionLease.Create(Lease) : null,
    };
}
