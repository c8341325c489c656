using System.Net;
using System.Reflection;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Migration;
using Asm.Testing.Cleanup;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Asm.SessionAdapter.Tests.EndToEnd;

/// <summary>
/// An app stopped (a deploy, SIGTERM) while a request holds its session's lock, on Kestrel, which waits for the requests
/// in flight: the request ends as it would have, its write is stored and its lock given back before the app is gone,
/// so the next instance on the storage takes the session at once.
/// </summary>
public sealed class HostShutdownTests : IDisposable
{
    private readonly string _root = TestDirectories.Create("asm-shutdown-");

    [Fact]
    public async Task StopWhileARequestHoldsTheLock_WaitsForIt_WhichStoresItsWriteAndGivesTheLockBack()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = await StartOnKestrelAsync(a =>
        {
            a.MapPost("/start", (HttpContext c) => c.Session.SetString("step", "started"));
            a.MapPost("/slow", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                c.Session.SetString("step", "finished during shutdown");
                entered.TrySetResult();
                await release.Task;
                return "done";
            });
        });
        var cookies = new CookieContainer();
        var address = new Uri(first.Urls.First());
        using var client = new HttpClient(new SocketsHttpHandler { CookieContainer = cookies }) { BaseAddress = address };
        (await client.PostAsync("/start", null)).EnsureSuccessStatusCode();

        var slow = client.PostAsync("/slow", null);
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var stopping = first.StopAsync();
        Assert.False(stopping.IsCompleted);
        release.SetResult();
        var response = await slow.WaitAsync(TimeSpan.FromSeconds(60));
        await stopping.WaitAsync(TimeSpan.FromSeconds(60));
        await first.DisposeAsync();

        Assert.Equal((HttpStatusCode.OK, "done"), (response.StatusCode, await response.Content.ReadAsStringAsync()));

        // The next instance on the storage: an Exclusive read that may not wait at all finds the lock free.
        await using var next = await SessionApp.StartAsync(
            b => b.UseFileSystemDriver(Path.Combine(_root, "sessions")),
            a => a.MapGet("/step", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                return c.Session.GetString("step");
            }),
            o => o.LockWaitTimeout = TimeSpan.Zero,
            services: ShareKeys);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/step");
        request.Headers.Add("Cookie", cookies.GetCookieHeader(address));
        var read = await next.CreateClient().SendAsync(request);

        Assert.Equal((HttpStatusCode.OK, "finished during shutdown"), (read.StatusCode, await read.Content.ReadAsStringAsync()));
    }

    [Fact]
    public async Task BackgroundServicesCancelledInTheirLoop_EndWithoutAFault()
    {
        // An app disposed without StopAsync (an integration test's `await using var app`) cancels its background
        // services, and the host logs every one that ends cancelled or failed as a failure ("BackgroundService failed").
        // Each is run here by hand, up to its first wait, and cancelled there: the host's own start of them races a
        // disposal that comes at once (dotnet/runtime#131249).
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddAsmSession().UseFileSystemDriver(Path.Combine(_root, "sessions")).MigrateFrom(
            previous => previous.UseInMemoryDriver().Services.AddSingleton(new InMemoryDriver(TimeProvider.System)),
            migration => (migration.MoveInBackground, migration.SessionsPerSecond) = (true, 1));
        await using var app = builder.Build();

        // Sessions to move, one a second: the mover is in the middle of its pass when it is cancelled.
        var from = app.Services.GetRequiredService<PreviousSessionDriver>().Driver;
        for (var i = 0; i < 3; i++)
        {
            var key = SessionKey.New();
            await from.CommitAsync(
                new SessionCommitRequest { SessionId = key.Id, Now = DateTimeOffset.UtcNow, IdleTimeout = TimeSpan.FromMinutes(20), CreateWithSecret = key.Secret, Changes = new Dictionary<string, byte[]?> { ["a"] = [1] } },
                CancellationToken.None);
        }

        var services = app.Services.GetServices<IHostedService>().OfType<BackgroundService>().Where(s => s.GetType().Namespace!.StartsWith("Asm.", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, services.Count);
        foreach (var service in services)
        {
            using var stopping = new CancellationTokenSource();
            var execute = typeof(BackgroundService).GetMethod("ExecuteAsync", BindingFlags.NonPublic | BindingFlags.Instance)!;
            var running = (Task)execute.Invoke(service, [stopping.Token])!;
            Assert.False(running.IsCompleted, $"{service.GetType().Name} ended before it was cancelled");

            await stopping.CancelAsync();

            await running.WaitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ContinueOnCapturedContext);
            Assert.True(running.IsCompletedSuccessfully, $"{service.GetType().Name} ended {running.Status}");
        }
    }

    public void Dispose() => TestDirectories.Delete(_root);

    private async Task<WebApplication> StartOnKestrelAsync(Action<WebApplication> map)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        ShareKeys(builder.Services);
        builder.Services.AddAsmSession().UseFileSystemDriver(Path.Combine(_root, "sessions"));
        var app = builder.Build();
        app.UseSession();
        map(app);
        await app.StartAsync();
        return app;
    }

    /// <summary>The instances read each other's cookies, as servers behind one load balancer do.</summary>
    private void ShareKeys(IServiceCollection services) =>
        services.AddDataProtection().SetApplicationName("asm-shutdown").PersistKeysToFileSystem(new DirectoryInfo(Path.Combine(_root, "keys")));
}
