using System.Collections.Concurrent;

namespace Asm.Demo;

/// <summary>
/// The slow requests of "Log in" that wait for their log-in, by the session cookie both carry, so that the slow request
/// reads its session after the key was regenerated however long the log-in takes on a busy machine.
/// </summary>
internal sealed class DemoLogIns
{
    /// <summary>How long a slow request waits for its log-in at most, after its own sleep.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<string, TaskCompletionSource> _waiting = new(StringComparer.Ordinal);

    /// <summary>
    /// Sleeps <paramref name="sleep"/>, then waits until the log-in sent with <paramref name="cookie"/> has regenerated
    /// the key (at most <see cref="MaxWait"/>: a log-in that reached the server first is not waited for again).
    /// </summary>
    public async Task SleepThenWaitAsync(string? cookie, TimeSpan sleep, CancellationToken cancellationToken)
    {
        if (cookie is null)
        {
            await Task.Delay(sleep, cancellationToken);
            return;
        }

        var loggedIn = _waiting.GetOrAdd(cookie, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        try
        {
            await Task.Delay(sleep, cancellationToken);
            await Task.WhenAny(loggedIn.Task, Task.Delay(MaxWait, cancellationToken));
            cancellationToken.ThrowIfCancellationRequested();
        }
        finally
        {
            _waiting.TryRemove(KeyValuePair.Create(cookie, loggedIn));
        }
    }

    /// <summary>Wakes the slow request sent with <paramref name="cookie"/>, if one waits.</summary>
    public void LoggedIn(string? cookie)
    {
        if (cookie is not null && _waiting.TryGetValue(cookie, out var loggedIn))
        {
            loggedIn.TrySetResult();
        }
    }
}
