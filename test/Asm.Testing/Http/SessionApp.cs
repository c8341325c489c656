using Asm.SessionAdapter;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Asm.Testing.Http;

/// <summary>
/// A real ASP.NET Core app on <c>TestServer</c> with Asm registered through its public API and the stock
/// <c>app.UseSession()</c>, for end-to-end tests.
/// </summary>
public sealed class SessionApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private SessionApp(WebApplication app) => _app = app;

    public IServiceProvider Services => _app.Services;

    public TestServer Server => _app.GetTestServer();

    /// <summary>
    /// Completes once <paramref name="requests"/> requests in all have queued in this app for a session lock that
    /// another of its requests held (they wait in the app, without asking the storage).
    /// </summary>
    public Task WhenQueuedForLock(int requests) => Services.GetRequiredService<AsmSessionServices>().LockQueue.WhenQueued(requests);

    /// <summary>How many sessions the app's lock queue holds: those a request of the app holds or waits for.</summary>
    public int LockQueueSessions => Services.GetRequiredService<AsmSessionServices>().LockQueue.SessionCount;

    /// <summary>Starts an app whose sessions use <paramref name="driver"/> and whose routes <paramref name="map"/> adds.</summary>
    public static async Task<SessionApp> StartAsync(
        Action<IAsmSessionBuilder> driver,
        Action<WebApplication> map,
        Action<AsmSessionOptions>? configure = null,
        TimeProvider? time = null,
        Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        if (Environment.GetEnvironmentVariable("ASM_TEST_LOG") == "1")
        {
            builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Information);
        }
        if (time is not null)
        {
            builder.Services.AddSingleton(time);
        }

        driver(builder.Services.AddAsmSession(configure));
        services?.Invoke(builder.Services);
        var app = builder.Build();
        app.UseSession();
        map(app);
        await app.StartAsync();
        return new SessionApp(app);
    }

    /// <summary>A client that keeps cookies between its requests, like one browser.</summary>
    public HttpClient CreateClient() => CreateClient(out _);

    /// <summary>A client that keeps cookies in <paramref name="jar"/>.</summary>
    public HttpClient CreateClient(out CookieJarHandler jar)
    {
        jar = new CookieJarHandler(Server.CreateHandler());
        return new HttpClient(jar) { BaseAddress = new Uri("http://localhost/") };
    }

    /// <summary>
    /// Makes the app being built read the cookies of the app behind <paramref name="other"/>, as servers behind one
    /// load balancer share their Data Protection keys.
    /// </summary>
    public static void ShareDataProtection(IServiceCollection services, IServiceProvider other) =>
        services.AddSingleton(other.GetRequiredService<IDataProtectionProvider>());

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
