namespace Asm.Demo.Tests;

/// <summary>"Destroy": the session is gone and the page starts a new one.</summary>
public sealed class DestroyTests(DemoFixture fixture) : IClassFixture<DemoFixture>
{
    [Fact]
    public async Task Destroy_AfterValuesWereStored_PageGetsANewEmptySession()
    {
        await using var page = await fixture.OpenDemoAsync();
        await page.LogInAsync();
        await page.DestroyAsync();
    }
}
