using Asm.Caching;
using Asm.SessionAdapter.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter.Users;

/// <summary>
/// Every <see cref="SweepOptions.Interval"/>, takes the due end checks from the driver and reports the sessions that
/// ended (see <see cref="SessionLifecycle.SweepAsync"/>), on every driver, Redis included: no keyspace notification is
/// needed, and an end is reported within two intervals of it by exactly one instance.
/// </summary>
internal sealed class SessionEndSweeper(SessionLifecycle lifecycle, IOptions<SweepOptions> options, TimeProvider timeProvider) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (lifecycle.Tracking is null)
        {
            return;
        }

        using var timer = new PeriodicTimer(options.Value.Interval, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await lifecycle.SweepAsync(timeProvider.GetUtcNow(), stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.EndSweepFailed(lifecycle.Logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The app stops, or is disposed without a stop: the sweeps end, which the host must not report as a failure.
        }
    }
}
