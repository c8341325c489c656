namespace Asm.Demo.Tests;

/// <summary>
/// The screenshot shown in the README and in docs/demo.md. Every run takes it; it replaces docs/demo.png only when
/// ASM_UPDATE_SCREENSHOT=1, so that running the tests leaves the work tree clean.
/// </summary>
public sealed class ScreenshotTests(DemoFixture fixture) : IClassFixture<DemoFixture>
{
    [Fact]
    public async Task EveryAction_InOneSession_ScreenshotOfTheResultsIsTaken()
    {
        await using var page = await fixture.OpenDemoAsync();
        await page.DestroyAsync();
        await page.FireIncrementsAsync();
        await page.LogInAsync();
        await page.SimulateAnotherBrowserAsync();
        await page.HoldTheLockAsync();
        await page.YourDevicesAsync();

        var path = Environment.GetEnvironmentVariable("ASM_UPDATE_SCREENSHOT") == "1"
            ? Path.Combine(Repository.Root, "docs", "demo.png")
            : Path.Combine(Path.GetTempPath(), $"asm-demo-{Guid.NewGuid():N}.png");
        await page.Page.ScreenshotAsync(new() { Path = path, FullPage = true });
        Assert.True(new FileInfo(path).Length > 10_000, $"The screenshot {path} looks empty.");
    }
}
