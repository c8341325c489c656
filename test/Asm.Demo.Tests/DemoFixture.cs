namespace Asm.Demo.Tests;

/// <summary>A test class's hold on the shared <see cref="DemoHost"/>.</summary>
public sealed class DemoFixture : IAsyncLifetime
{
    private DemoHost? _host;

    public async Task InitializeAsync() => _host = await DemoHost.AcquireAsync();

    /// <summary>The demo page in a browser context of its own: its own cookie jar, so its own session.</summary>
    public Task<DemoBrowserPage> OpenDemoAsync() =>
        (_host ?? throw new InvalidOperationException("The fixture is not initialized.")).OpenDemoAsync();

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            _host = null;
            await DemoHost.ReleaseAsync();
        }
    }
}
