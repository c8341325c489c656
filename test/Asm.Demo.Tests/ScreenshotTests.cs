using System.Buffers.Binary;
using Asm.Testing.Cleanup;

namespace Asm.Demo.Tests;

/// <summary>
/// The screenshot shown in the README and in docs/demo.md. Every run takes it; it replaces docs/demo.png only when
/// ASM_UPDATE_SCREENSHOT=1, so that running the tests leaves the work tree clean.
/// </summary>
public sealed class ScreenshotTests(DemoFixture fixture) : IClassFixture<DemoFixture>
{
    private const int ViewportWidth = 1280;

    [Fact]
    public async Task EveryAction_InOneSession_ScreenshotShowsTheWholePageWithEveryCardDone()
    {
        await using var page = await fixture.OpenDemoAsync();
        var fresh = await page.Page.ScreenshotAsync(new() { FullPage = true });

        await page.DestroyAsync();
        await page.FireIncrementsAsync();
        await page.LogInAsync();
        await page.SimulateAnotherBrowserAsync();
        await page.HoldTheLockAsync();
        await page.YourDevicesAsync();

        var cards = await page.Page.Locator("[id^=card-]").AllAsync();
        Assert.Equal(6, cards.Count);
        foreach (var card in cards)
        {
            Assert.Equal("done", await card.GetAttributeAsync("data-status"));
        }

        var folder = TestDirectories.Create("asm-demo-screenshot-");
        var path = Environment.GetEnvironmentVariable("ASM_UPDATE_SCREENSHOT") == "1"
            ? Path.Combine(Repository.Root, "docs", "demo.png")
            : Path.Combine(folder, "demo.png");
        var shot = await page.Page.ScreenshotAsync(new() { Path = path, FullPage = true });
        var pageHeight = await page.Page.EvaluateAsync<int>("document.documentElement.scrollHeight");

        // A PNG of the whole page (not just the viewport), and not the page as it was before the actions.
        Assert.Equal(shot, await File.ReadAllBytesAsync(path));
        var (width, height) = PngSize(shot);
        Assert.Equal(ViewportWidth, width);
        Assert.Equal(pageHeight, height);
        Assert.NotEqual(fresh, shot);
        TestDirectories.Delete(folder);
    }

    /// <summary>The width and height from a PNG's IHDR chunk, after checking the signature.</summary>
    private static (int Width, int Height) PngSize(byte[] png)
    {
        byte[] signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
        Assert.True(png.Length > 24 && png.AsSpan(0, 8).SequenceEqual(signature), "The screenshot is not a PNG.");
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        return (BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
    }
}
