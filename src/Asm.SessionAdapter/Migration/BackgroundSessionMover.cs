using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter.Migration;

/// <summary>
/// Moves every session of the previous driver to the new one in the background, at a bounded rate, when
/// <see cref="AsmMigrationOptions.MoveInBackground"/> is on. Each session moves as on first use (locked, copied, stored
/// if absent, the previous copy ended), so a mover on another server, or a request, never moves one twice.
/// </summary>
/// <remarks>
/// A pass lists the previous driver's records and moves the live ones; tombstones and expired records are passed over.
/// Sessions locked by a running request are retried in another pass. When a pass meets no locked session, every session
/// is moved or has ended: the mover logs that the migration is complete and stops.
/// </remarks>
internal sealed class BackgroundSessionMover(
    ISessionDriver current,
    PreviousSessionDriver previous,
    IOptions<AsmMigrationOptions> options,
    IOptions<AsmSessionOptions> sessionOptions,
    TimeProvider time,
    AsmSessionMetrics metrics,
    ILogger<BackgroundSessionMover> logger) : BackgroundService
{
    private const int ProgressEvery = 1000;
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.MoveInBackground)
        {
            return;
        }

        if (previous.Driver is not ISessionListingDriver listing)
        {
            Log.MoverCannotList(logger, previous.Driver.GetType().Name);
            return;
        }

        var mover = new MigratingSessionDriver(current, previous.Driver, time, metrics, logger, sessionOptions.Value.LockLease, sessionOptions.Value.IOTimeout);
        var interval = TimeSpan.FromSeconds(1.0 / options.Value.SessionsPerSecond);
        try
        {
            for (var pass = 1; !stoppingToken.IsCancellationRequested; pass++)
            {
                var (listed, moved, locked) = (0, 0, 0);
                try
                {
                    await foreach (var id in listing.ListSessionIdsAsync(stoppingToken).ConfigureAwait(false))
                    {
                        listed++;
                        switch (await mover.TryMoveAsync(id, waitIfBusy: false, stoppingToken).ConfigureAwait(false))
                        {
                            case { Moved: true }:
                                moved++;
                                break;
                            case { Status: SessionLoadStatus.LockBusy }:
                                locked++;
                                break;
                        }

                        if (listed % ProgressEvery == 0)
                        {
                            Log.MoverProgress(logger, pass, listed, moved, locked);
                        }

                        await Task.Delay(interval, time, stoppingToken).ConfigureAwait(false);
                    }
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    Log.MoverFailed(logger, pass, ex);
                    await Task.Delay(RetryAfter, time, stoppingToken).ConfigureAwait(false);
                    continue;
                }

                Log.MoverPassDone(logger, pass, listed, moved, locked);
                if (locked == 0)
                {
                    Log.MoverComplete(logger);
                    return;
                }

                await Task.Delay(RetryAfter, time, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The app stops, or is disposed without a stop: the move ends, which the host must not report as a failure.
        }
    }
}
