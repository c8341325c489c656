using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Asm.Testing.Http;
using Asm.Testing.Redis;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Asm.SessionAdapter.Tests.Redis;

/// <summary>
/// Requests while Redis restarts empty with locks held, and while it hangs (SIGSTOP): clear errors within the
/// timeouts, never a 500 once Redis is back, no wait past one lease, no thread-pool starvation, and recovery without
/// a restart of the app. On a server of the test's own, without persistence.
/// </summary>
public sealed class RedisFaultTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan IOTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How much later than its timeout a failure may come on a loaded two-core machine.</summary>
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(8);

    private readonly RedisServer _server = new();
    private readonly ConcurrentQueue<Exception> _thrown = new();
    private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task InitializeAsync() => _server.StartAsync();

    public Task DisposeAsync()
    {
        _server.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task RedisRestartsEmptyWithLocksHeld_ClearErrorsThenOldCookiesAreNewSessionsAndNoWaitPastOneLease()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        Assert.Equal("1", await PostAsync(client, "/inc"));

        var holder = TimedAsync(() => client.PostAsync("/hold", null));
        await _held.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var waiter = TimedAsync(() => client.PostAsync("/inc", null));

        _server.Stop();
        var (during, duringTime) = await TimedAsync(() => client.GetAsync("/n"));
        Assert.Equal(HttpStatusCode.InternalServerError, during.StatusCode);
        Assert.InRange(duringTime, TimeSpan.Zero, IOTimeout + Slack);
        var outage = Assert.IsType<SessionStorageException>(_thrown.Last());
        Assert.Contains("Redis", outage.Message, StringComparison.Ordinal);

        await _server.StartAsync();
        var restarted = Stopwatch.StartNew();
        _release.SetResult();
        var (held, _) = await holder;
        var (waited, _) = await waiter;
        restarted.Stop();

        // The lock went with the data: nothing waits for it past one lease, and every failure is a clear one.
        Assert.InRange(restarted.Elapsed, TimeSpan.Zero, Lease + IOTimeout + Slack);
        Assert.Contains(held.StatusCode, new[] { HttpStatusCode.OK, HttpStatusCode.InternalServerError });
        Assert.Contains(waited.StatusCode, new[] { HttpStatusCode.OK, HttpStatusCode.InternalServerError });
        Assert.All(_thrown, e => Assert.True(e is SessionStorageException or OperationCanceledException, e.ToString()));

        // Once Redis answers again: the old cookie gets a new, empty session (its record is gone), never a 500.
        Assert.Equal("0", await ReadOnceBackAsync(client));
        Assert.Equal("1", await PostAsync(client, "/inc"));
        var stranger = app.CreateClient();
        Assert.Equal("1", await PostAsync(stranger, "/inc"));
        Assert.Equal("1", await stranger.GetStringAsync("/n"));
    }

    [Fact]
    public async Task RedisPaused_TwoHundredConcurrentRequestsFailWithinTheTimeoutsWithoutStarvingThreadsAndRecover()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        Assert.Equal("1", await PostAsync(client, "/inc"));
        var threadsBefore = ThreadPool.ThreadCount;

        _server.Pause();
        TimeSpan slowestProbe;
        (HttpResponseMessage Response, TimeSpan Time)[] results;
        try
        {
            var requests = Enumerable.Range(0, 200)
                .Select(i => TimedAsync(() => i % 2 == 0 ? client.GetAsync("/n") : client.PostAsync("/inc", null)))
                .ToList();
            slowestProbe = await SlowestThreadPoolProbeAsync(Task.WhenAll(requests));
            results = await Task.WhenAll(requests);
        }
        finally
        {
            _server.Resume();
        }

        var slowest = results.Max(r => r.Time);
        output.WriteLine(
            $"200 requests against a paused Redis: slowest answer {slowest.TotalSeconds:0.00} s, slowest thread-pool probe " +
            $"{slowestProbe.TotalMilliseconds:0} ms, thread-pool threads {threadsBefore} -> {ThreadPool.ThreadCount}.");
        Assert.All(results, r => Assert.Equal(HttpStatusCode.InternalServerError, r.Response.StatusCode));
        Assert.InRange(slowest, TimeSpan.Zero, IOTimeout + Lease + Slack);
        // A pool starved by requests blocking on Redis would run the probe only as they time out, a few threads a
        // second for 200 of them; one lease and one I/O timeout leave room for a busy machine and none for that.
        Assert.InRange(slowestProbe, TimeSpan.Zero, IOTimeout + Lease);
        Assert.All(_thrown, e => Assert.True(e is SessionStorageException or OperationCanceledException or SessionLockTimeoutException, e.ToString()));

        // Resumed: the session is there, as it was.
        Assert.Equal("1", await ReadOnceBackAsync(client));
        Assert.Equal("2", await PostAsync(client, "/inc"));
    }

    private Task<SessionApp> StartAsync() =>
        SessionApp.StartAsync(
            b => b.UseRedisDriver(o =>
            {
                o.Configuration = $"{_server.EndPoint},connectTimeout=500,syncTimeout=1000,asyncTimeout=1000";
                o.OperationTimeout = OperationTimeout;
            }),
            Map,
            o =>
            {
                o.LockLease = Lease;
                o.IOTimeout = IOTimeout;
            });

    private static async Task<string> PostAsync(HttpClient client, string path) =>
        await (await client.PostAsync(path, null)).EnsureSuccessStatusCode().Content.ReadAsStringAsync();

    /// <summary>Reads <c>/n</c> until Redis answers again (the client reconnects by itself), within 30 s.</summary>
    private static async Task<string> ReadOnceBackAsync(HttpClient client)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var response = await client.GetAsync("/n");
            if (response.IsSuccessStatusCode || deadline.Elapsed > TimeSpan.FromSeconds(30))
            {
                return await response.EnsureSuccessStatusCode().Content.ReadAsStringAsync();
            }

            await Task.Delay(100);
        }
    }

    private static async Task<(HttpResponseMessage Response, TimeSpan Time)> TimedAsync(Func<Task<HttpResponseMessage>> send)
    {
        var watch = Stopwatch.StartNew();
        var response = await send();
        return (response, watch.Elapsed);
    }

    /// <summary>How long a work item queued on the thread pool waited, at worst, while <paramref name="busy"/> ran.</summary>
    private static async Task<TimeSpan> SlowestThreadPoolProbeAsync(Task busy)
    {
        var slowest = TimeSpan.Zero;
        while (!busy.IsCompleted)
        {
            var watch = Stopwatch.StartNew();
            await Task.Run(() => { });
            slowest = watch.Elapsed > slowest ? watch.Elapsed : slowest;
            await Task.WhenAny(busy, Task.Delay(50));
        }

        return slowest;
    }

    private void Map(WebApplication app)
    {
        app.AnswerExceptionsWith500(_thrown.Enqueue);
        app.MapPost("/inc", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetInt32("n", (c.Session.GetInt32("n") ?? 0) + 1);
            await c.Session.CommitAsync();
            return c.Session.GetInt32("n");
        });
        app.MapPost("/hold", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("held", "yes");
            _held.TrySetResult();
            await _release.Task;
        });
        app.MapGet("/n", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetInt32("n") ?? 0;
        }).WithSessionLock(SessionLockMode.ReadOnly);
    }
}
