namespace Asm.Demo.Tests;

/// <summary>"Hold the lock for 3 s": read-only endpoints do not wait for the lock.</summary>
public sealed class HoldTheLockTests(DemoFixture fixture) : IClassFixture<DemoFixture>
{
    [Fact]
    public async Task HoldTheLock_ForThreeSeconds_ReadOnlyEndpointKeepsAnswering()
    {
        await using var page = await fixture.OpenDemoAsync();
        await page.HoldTheLockAsync();
    }
}
