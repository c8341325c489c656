using Microsoft.Playwright;

namespace Asm.Demo.Tests;

/// <summary>
/// One demo process and one headless Chromium (Debian's) for all the demo test classes, which run in parallel: the
/// first class to start starts them, the last one to finish stops them.
/// </summary>
public sealed class DemoHost : IAsyncDisposable
{
    /// <summary>The browser the tests drive; Playwright's own browser download is never used.</summary>
    public const string ChromiumPath = "/usr/bin/chromium";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static DemoHost? s_shared;
    private static int s_users;

    private readonly DemoProcess _demo;
    private readonly IPlaywright _playwright;
    private readonly IBrowser _browser;

    private DemoHost(DemoProcess demo, IPlaywright playwright, IBrowser browser)
    {
        _demo = demo;
        _playwright = playwright;
        _browser = browser;
    }

    public static async Task<DemoHost> AcquireAsync()
    {
        await Gate.WaitAsync();
        try
        {
            s_shared ??= await StartAsync();
            s_users++;
            return s_shared;
        }
        finally
        {
            Gate.Release();
        }
    }

    public static async Task ReleaseAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (--s_users == 0 && s_shared is { } host)
            {
                s_shared = null;
                await host.DisposeAsync();
            }
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>The demo page in a browser context of its own: its own cookie jar, so its own session.</summary>
    public async Task<DemoBrowserPage> OpenDemoAsync()
    {
        var context = await _browser.NewContextAsync(new()
        {
            ViewportSize = new() { Width = 1280, Height = 900 },
            Locale = "en-GB",
            TimezoneId = "UTC",
        });
        return await DemoBrowserPage.OpenAsync(context, _demo.Address);
    }

    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
        await _demo.DisposeAsync();
    }

    private static async Task<DemoHost> StartAsync()
    {
        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"The demo tests drive Chromium at {ChromiumPath}, which is missing: apt-get install -y chromium");
        }

        Assertions.SetDefaultExpectTimeout(15_000);
        var demo = await DemoProcess.StartAsync();
        try
        {
            var playwright = await Playwright.CreateAsync();
            var browser = await playwright.Chromium.LaunchAsync(new()
            {
                ExecutablePath = ChromiumPath,
                Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            });
            return new DemoHost(demo, playwright, browser);
        }
        catch
        {
            await demo.DisposeAsync();
            throw;
        }
    }
}
