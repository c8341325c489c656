namespace Asm.Demo.Tests;

/// <summary>"Your devices": the user's sessions listed, the other devices logged out, each end in the event log.</summary>
public sealed class YourDevicesTests(DemoFixture fixture) : IClassFixture<DemoFixture>
{
    [Fact]
    public async Task YourDevices_AfterLogIn_ListsBothDevicesAndLogsTheOtherOneOut()
    {
        await using var page = await fixture.OpenDemoAsync();
        await page.LogInAsync();
        await page.YourDevicesAsync();
    }
}
