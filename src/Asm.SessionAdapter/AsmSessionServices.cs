using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Encryption;
using Asm.SessionAdapter.Import;
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
    StockSessionImporter? importer = null)
{
    public AsmSessionOptions Options { get; } = options.Value;

    public ISessionDriver Driver { get; } = options.Value.EncryptAtRest ? new EncryptingSessionDriver(driver, dataProtection) : driver;

    /// <summary>The stock-session importer, when <c>ImportStockSessions()</c> is on.</summary>
    public StockSessionImporter? Importer { get; } = importer is null || driver is ISessionTransferDriver ? importer : throw new InvalidOperationException(
        $"ImportStockSessions() needs a driver that implements {nameof(ISessionTransferDriver)}; {driver.GetType().Name} does not.");

    /// <summary>The driver's user and end tracking (resolved once), or <see langword="null"/> when it has none.</summary>
    public ISessionTrackingDriver? Tracking { get; } = driver as ISessionTrackingDriver;

    public TimeProvider Time { get; } = timeProvider;

    public AsmSessionMetrics Metrics { get; } = metrics;

    public ILogger Logger { get; } = logger;

    public SessionCookie Cookie { get; } = new(sessionOptions.Value.Cookie, dataProtection);
}
