using System.Diagnostics;
using Xunit;

namespace Asm.Testing.Waiting;

/// <summary>Polls a condition that another process or server makes true in its own time (a failover, a reconnect).</summary>
/// <remarks>For what the test itself sets off, wait on a signal instead; polling is for what only shows from outside.</remarks>
public static class Eventually
{
    private static readonly TimeSpan Every = TimeSpan.FromMilliseconds(20);

    /// <summary>Returns once <paramref name="condition"/> holds; fails the test naming <paramref name="what"/> when it has not within <paramref name="within"/>.</summary>
    /// <param name="condition">The check, asked again every 20 ms.</param>
    /// <param name="within">How long the condition may take to hold.</param>
    /// <param name="what">What is awaited, for the failure message ("the replica to be promoted").</param>
    /// <param name="whileFailingWith">Exceptions of the check that mean "not yet" (a command sent while the client reconnects); any other fails the test at once.</param>
    public static async Task HoldsAsync(Func<Task<bool>> condition, TimeSpan within, string what, Func<Exception, bool>? whileFailingWith = null)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (await condition().ConfigureAwait(false))
                {
                    return;
                }
            }
            catch (Exception ex) when (whileFailingWith?.Invoke(ex) == true && watch.Elapsed < within)
            {
            }

            Assert.True(watch.Elapsed < within, $"Waited {within.TotalSeconds} s for {what}.");
            await Task.Delay(Every).ConfigureAwait(false);
        }
    }
}
