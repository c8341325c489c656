using Asm.Caching.Drivers.Redis;
using Microsoft.Extensions.Time.Testing;

namespace Asm.Caching.Tests.Drivers.Redis;

public sealed class ContendedSessionsTests
{
    private readonly FakeTimeProvider _clock = new();

    [Fact]
    public void Published_CountsForItsWindowThenNoLonger_AndIsForgotten()
    {
        var contended = new ContendedSessions(_clock);
        contended.Published("a");

        _clock.Advance(ContendedSessions.Window);
        Assert.True(contended.IsContended("a"));
        Assert.False(contended.IsContended("b"));

        _clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.False(contended.IsContended("a"));
        Assert.Equal(0, contended.Count);
    }

    [Fact]
    public void Published_AgainWithinTheWindow_StartsItAgain()
    {
        var contended = new ContendedSessions(_clock);
        contended.Published("a");
        _clock.Advance(ContendedSessions.Window);

        contended.Published("a");
        _clock.Advance(ContendedSessions.Window);

        Assert.True(contended.IsContended("a"));
    }

    [Fact]
    public void Published_ManySessionsNeverAskedAgain_PastTheirWindowArePruned()
    {
        var contended = new ContendedSessions(_clock);
        for (var i = 0; i < ContendedSessions.PruneAbove; i++)
        {
            contended.Published($"old-{i}");
        }

        _clock.Advance(ContendedSessions.Window + TimeSpan.FromMilliseconds(1));
        contended.Published("new");

        Assert.Equal(1, contended.Count);
        Assert.True(contended.IsContended("new"));
    }
}
