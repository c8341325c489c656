using Asm.Caching.Sessions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Asm.Caching;

/// <summary>
/// Removes expired entries from the chosen driver on an interval, outside requests. Does nothing for drivers whose
/// storage expires entries itself (Redis).
/// </summary>
internal sealed partial class DriverSweeper(
    ISessionDriver driver,
    IOptions<SweepOptions> options,
    TimeProvider timeProvider,
    ILogger<DriverSweeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (driver is not ISweepableDriver sweepable)
        {
            return;
        }

        await PeriodicSweep.RunAsync(
            options.Value.Interval,
            timeProvider,
            async ct =>
            {
                var removed = await sweepable.SweepAsync(timeProvider.GetUtcNow(), ct).ConfigureAwait(false);
                if (removed > 0)
                {
                    Swept(removed);
                }
            },
            SweepFailed,
            stoppingToken).ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Debug, Message = "Removed {Count} expired entries.")]
    private partial void Swept(int count);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Sweeping expired entries failed; the next sweep tries again.")]
    private partial void SweepFailed(Exception exception);
}
