namespace Asm.Demo.Tests;

/// <summary>"Log in": ID regeneration while a request with the old key is in flight.</summary>
public sealed class LogInTests(DemoFixture fixture) : IClassFixture<DemoFixture>
{
    [Fact]
    public async Task LogIn_WhileASlowRequestRuns_OldKeyIsAnsweredAsZombieAndNothingIsLost()
    {
        await using var page = await fixture.OpenDemoAsync();
        await page.LogInAsync();
    }
}
