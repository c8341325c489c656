using Asm.Testing.Cleanup;
using Asm.Testing.Drivers;
using Asm.Testing.Http;

namespace Asm.SessionAdapter.Tests.Redis;

/// <summary>The child app of the cross-process tests runs on the StackExchange.Redis of the test line that starts it.</summary>
public sealed class RedisChildAppTests(RedisDriverFixture driver) : IClassFixture<RedisDriverFixture>, IDisposable
{
    private readonly string _keys = TestDirectories.Create("asm-keys-");

    [Fact]
    public async Task ChildApp_OnRedis_RunsOnTheTestLinesStackExchangeRedis()
    {
        await using var child = await ChildApp.StartAsync(["--keys", _keys, .. driver.ChildArguments(Guid.NewGuid().ToString("N"))]);
        using var client = new HttpClient();

        var version = Version.Parse(await client.GetStringAsync(new Uri(child.Address, "/redis-client")));
        var response = await client.PostAsync(new Uri(child.Address, "/inc"), null);

        Assert.Equal(typeof(StackExchange.Redis.ConnectionMultiplexer).Assembly.GetName().Version, version);
#if REDIS3
        Assert.Equal(3, version.Major);
#else
        Assert.Equal(2, version.Major);
#endif
        response.EnsureSuccessStatusCode();
        Assert.Equal("1", await response.Content.ReadAsStringAsync());
    }

    public void Dispose() => TestDirectories.Delete(_keys);
}
