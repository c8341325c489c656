namespace Asm.Caching;

/// <summary>The loop of a background sweep, shared by the driver's sweep and the session-end sweep.</summary>
internal static class PeriodicSweep
{
    /// <summary>
    /// Runs <paramref name="sweep"/> every <paramref name="interval"/> until <paramref name="stoppingToken"/> is
    /// cancelled. A sweep that fails is handed to <paramref name="failed"/>, and the next tick tries again; so is one
    /// that throws an <see cref="OperationCanceledException"/> while <paramref name="stoppingToken"/> is not cancelled
    /// (a storage client's timeout surfaces as one), or one storage timeout would end the sweeps for the life of the
    /// process. The cancellation of <paramref name="stoppingToken"/> ends the loop without a fault: the app stops, or is
    /// disposed without a stop, and the host must not report that as a failed background service.
    /// </summary>
    public static async Task RunAsync(
        TimeSpan interval, TimeProvider timeProvider, Func<CancellationToken, Task> sweep, Action<Exception> failed, CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(interval, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await sweep(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    failed(ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
