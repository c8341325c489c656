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

        await PeriodicSweep.RunAsync(
            options.Value.Interval,
            timeProvider,
            ct => lifecycle.SweepAsync(timeProvider.GetUtcNow(), ct),
            ex => Log.EndSweepFailed(lifecycle.Logger, ex),
            stoppingToken).ConfigureAwait(false);
    }
}
