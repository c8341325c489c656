using Asm.Caching.Sessions;

namespace Asm.Caching.Tests.Locking;

public sealed class SessionLeaseTests
{
    [Fact]
    public void Create_ManyLeases_GivesEachAUrlSafeTokenOfItsOwnAfterOneProcessPrefix()
    {
        var tokens = Enumerable.Range(0, 10_000).Select(_ => SessionLease.Create(TimeSpan.FromSeconds(30)).Token).ToList();

        Assert.Equal(tokens.Count, tokens.Distinct(StringComparer.Ordinal).Count());
        Assert.Single(tokens.Select(t => t[..11]).Distinct(StringComparer.Ordinal));
        Assert.All(tokens, t => Assert.Matches("^[A-Za-z0-9_-]{12,22}$", t));
    }

    [Fact]
    public void Token_CountsWhereADigitIsAdded_AreDistinctAndAsShortAsTheyCanBe()
    {
        ulong[] counts = [1, 63, 64, 65, 4095, 4096, 4097, 1UL << 60, ulong.MaxValue];

        var tokens = counts.Select(SessionLease.TokenOf).ToList();

        Assert.Equal(counts.Length, tokens.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal([12, 12, 13, 13, 13, 14, 14, 22, 22], tokens.Select(t => t.Length));
    }
}
