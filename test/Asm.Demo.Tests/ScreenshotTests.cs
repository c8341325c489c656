namespace Asm.Demo.Tests;

/// <summary>The screenshot shown in the README and in docs/demo.md.</summary>
public sealed class ScreenshotTests(DemoFixture fixture) : IClassFixture<DemoFixture>
{
    [Fact]
    public async Task EveryAction_InOneSession_ScreenshotOfTheResultsIsWrittenToDocs()
    {
        await using var page = await fixture.OpenDemoAsync();
        await page.DestroyAsync();
        await page.FireIncrementsAsync();
        await page.LogInAsync();
        await page.SimulateAnotherBrowserAsync();
        await page.HoldTheLockAsync();

        var path = Path.Combine(Repository.Root, "docs", "demo.png");
        await page.Page.ScreenshotAsync(new() { Path = path, FullPage = true });
        Assert.True(new FileInfo(path).Length > 10_000, $"The screenshot {path} looks empty.");
    }
}
