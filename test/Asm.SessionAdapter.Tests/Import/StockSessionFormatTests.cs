using Asm.SessionAdapter.Import;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter.Tests.Import;

public sealed class StockSessionFormatTests
{
    [Fact]
    public async Task TryRead_ReadsWhatTheStockDistributedSessionWrites()
    {
        var cache = new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions()));
        var session = new DistributedSession(cache, "stock-key", TimeSpan.FromMinutes(20), TimeSpan.FromMinutes(1), () => true, NullLoggerFactory.Instance, isNewSessionKey: true);
        session.SetString("user", "alice");
        session.SetInt32("n", 41);
        session.Set("empty", []);
        session.Set("naïve ☃", [0, 255, 1]);
        session.Set(new string('k', ushort.MaxValue), new byte[100_000]);
        await session.CommitAsync();

        Assert.True(StockSessionFormat.TryRead(await cache.GetAsync("stock-key"), out var values));

        Assert.Equal(5, values.Count);
        Assert.Equal("alice"u8.ToArray(), values["user"]);
        Assert.Equal([0, 0, 0, 41], values["n"]);
        Assert.Empty(values["empty"]);
        Assert.Equal([0, 255, 1], values["naïve ☃"]);
        Assert.Equal(100_000, values[new string('k', ushort.MaxValue)].Length);
    }

    [Fact]
    public void TryRead_ReadsAnEmptyStockSession()
    {
        Assert.True(StockSessionFormat.TryRead(StockSessionImportTests.StockPayload(), out var values));
        Assert.Empty(values);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 2, 0, 0, 0 })]
    [InlineData(new byte[] { 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 })]
    [InlineData(new byte[] { 2, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 })]
    [InlineData(new byte[] { 2, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 1, (byte)'a', 0xFF, 0xFF, 0xFF, 0xFF })]
    public void TryRead_RefusesDamagedPayloads(byte[] payload) => Assert.False(StockSessionFormat.TryRead(payload, out _));

    [Fact]
    public void TryRead_RefusesANameTwice() =>
        Assert.False(StockSessionFormat.TryRead(StockSessionImportTests.StockPayload(("a", [1]), ("a", [2])), out _));
}
