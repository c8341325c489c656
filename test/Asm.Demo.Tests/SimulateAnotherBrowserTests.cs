namespace Asm.Demo.Tests;

/// <summary>"Simulate another browser": the profile check.</summary>
public sealed class SimulateAnotherBrowserTests(DemoFixture fixture) : IClassFixture<DemoFixture>
{
    [Fact]
    public async Task SimulateAnotherBrowser_NewClientProfile_ProfileChangeIsLogged()
    {
        await using var page = await fixture.OpenDemoAsync();
        await page.SimulateAnotherBrowserAsync();
    }
}
