using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Encryption;
using Asm.SessionAdapter.Import;
using Asm.SessionAdapter.Migration;
using Asm.SessionAdapter.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter;

/// <summary>What every session of the application shares, resolved once.</summary>
internal sealed class AsmSessionServices(
    IOptions<AsmSessionOptions> options,
    IOptions<SessionOptions> sessionOptions,
    ISessionDriver driver,
    IDataProtectionProvider dataProtection,
    TimeProvider timeProvider,
    AsmSessionMetrics metrics,
    ILogger<AsmSessionStore> logger,
    StockSessionImporter? importer = null,
    PreviousSessionDriver? previous = null) : IDisposable
{
    private readonly (ISessionDriver Driver, MigratingSessionDriver? Migration) _composed =
        Compose(options.Value, driver, dataProtection, timeProvider, metrics, logger, previous);

    public AsmSessionOptions Options { get; } = options.Value;

    /// <summary>
    /// The driver sessions use: the chosen one, behind the migration from the previous driver when there is one, behind
    /// encryption when it is on (so that sessions move between drivers sealed, as stored).
    /// </summary>
    public ISessionDriver Driver => _composed.Driver;

    /// <summary>The move from the previous driver (<c>MigrateFrom</c>), under <see cref="Driver"/>'s encryption; <see langword="null"/> without one.</summary>
    public MigratingSessionDriver? Migration => _composed.Migration;

    /// <summary>
    /// <see cref="Driver"/> as sessions call it: under <see cref="AsmSessionOptions.IOTimeout"/>, with failures made
    /// clear, resuming off the driver's thread.
    /// </summary>
    public GuardedSessionDriver Storage => field ??= new GuardedSessionDriver(Driver, Options.IOTimeout);

    /// <summary>The stock-session importer, when <c>ImportStockSessions()</c> is on.</summary>
    public StockSessionImporter? Importer { get; } = importer is null || driver is ISessionTransferDriver ? importer : throw new InvalidOperationException(
        $"ImportStockSessions() needs a driver that implements {nameof(ISessionTransferDriver)}; {driver.GetType().Name} does not.");

    /// <summary>The driver's user and end tracking (resolved once), or <see langword="null"/> when it has none.</summary>
    public ISessionTrackingDriver? Tracking { get; } = driver as ISessionTrackingDriver;

    public TimeProvider Time { get; } = timeProvider;

    public AsmSessionMetrics Metrics { get; } = metrics;

    public ILogger Logger { get; } = logger;

    /// <summary>The requests of this process waiting for a session's lock: only the first asks the storage.</summary>
    public LocalLockQueue LockQueue { get; } = new(timeProvider);

    /// <summary>The timers that renew the leases of this process's requests, reused from one request to the next.</summary>
    public RenewalTimers RenewalTimers { get; } = new(timeProvider);

    public SessionCookie Cookie { get; } = new(sessionOptions.Value.Cookie, dataProtection);

    /// <summary>
    /// Logs, once, that a session middleware was given timeouts other than Asm's (<c>app.UseSession(options)</c>), which
    /// Asm does not use; <paramref name="idleTimeout"/> and <paramref name="ioTimeout"/> are the middleware's.
    /// </summary>
    public void CheckMiddlewareOptions(TimeSpan idleTimeout, TimeSpan ioTimeout)
    {
        if ((idleTimeout != Options.IdleTimeout || ioTimeout != Options.IOTimeout) && Interlocked.Exchange(ref _middlewareOptionsReported, 1) == 0)
        {
            Diagnostics.Log.SessionOptionsNotUsed(Logger, "the IdleTimeout and IOTimeout given to app.UseSession(options)");
        }
    }

    private int _middlewareOptionsReported;

    /// <summary>Disposes the renewal timers kept for reuse: none ticks on once the application has stopped.</summary>
    public void Dispose() => RenewalTimers.Dispose();

    private static (ISessionDriver Driver, MigratingSessionDriver? Migration) Compose(
        AsmSessionOptions options,
        ISessionDriver driver,
        IDataProtectionProvider dataProtection,
        TimeProvider time,
        AsmSessionMetrics metrics,
        ILogger logger,
        PreviousSessionDriver? previous)
    {
        var migration = previous is null ? null : new MigratingSessionDriver(driver, previous.Driver, time, metrics, logger, options.LockLease, options.IOTimeout);
        var composed = migration ?? driver;
        return (options.EncryptAtRest ? new EncryptingSessionDriver(composed, dataProtection) : composed, migration);
    }
}
