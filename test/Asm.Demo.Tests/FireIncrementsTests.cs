namespace Asm.Demo.Tests;

/// <summary>"Fire 50 parallel increments": no lost updates in Exclusive mode.</summary>
public sealed class FireIncrementsTests(DemoFixture fixture) : IClassFixture<DemoFixture>
{
    [Fact]
    public async Task FireIncrements_FiftyParallelRequests_ExclusiveCounterReachesFifty()
    {
        await using var page = await fixture.OpenDemoAsync();
        await page.FireIncrementsAsync();
    }
}
