using System.Diagnostics;

namespace Asm.Testing.Redis;

/// <summary>
/// Waits for a client's subscription to reach Redis. A client subscribes in the background once it connects, and a
/// message published before Redis has the subscription is lost: a test that times a wake-up by a published message
/// waits for the subscription first, or it measures how long the SUBSCRIBE took on a busy machine.
/// </summary>
public static class RedisSubscribers
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Completes once a connection named <paramref name="clientName"/> (<c>name=</c> in its configuration) holds a
    /// subscription on one of <paramref name="nodes"/> (every node of a cluster: the client subscribes on one of
    /// them); throws after a minute. This tells where the client subscribes, not that a given channel's subscription
    /// has arrived: StackExchange.Redis subscribes its subscription connection to its configuration channel first.
    /// </summary>
    public static async Task WaitForAsync(IEnumerable<RedisServer> nodes, string clientName)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        var waited = Stopwatch.StartNew();
        while (true)
        {
            foreach (var node in nodes)
            {
                var clients = await node.ExecuteTextAsync("CLIENT", "LIST").ConfigureAwait(false) ?? "";
                if (clients.Split('\n').Any(c => c.Contains($" name={clientName} ", StringComparison.Ordinal) && !c.Contains(" sub=0 ", StringComparison.Ordinal)))
                {
                    return;
                }
            }

            if (waited.Elapsed > Patience)
            {
                throw new TimeoutException($"No subscription of client {clientName} reached Redis in {Patience.TotalSeconds} s.");
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }
}
