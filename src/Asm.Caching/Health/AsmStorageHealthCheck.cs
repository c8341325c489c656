using Asm.Caching.Sessions;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Asm.Caching.Health;

/// <summary>
/// The health of the storage driver in use: the driver's own probe when it has one (Redis answers a <c>PING</c>, the
/// filesystem directory takes a write), otherwise healthy (the in-memory driver is available while the process
/// runs). With <c>MigrateFrom</c>, the previous driver is probed too: while it fails, sessions not moved yet cannot
/// be read, so a healthy driver in use is reported <see cref="HealthStatus.Degraded"/>, naming the previous one.
/// </summary>
internal sealed class AsmStorageHealthCheck(ISessionDriver driver, IPreviousStorage? previous = null) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var current = await ProbeAsync(driver, context, cancellationToken).ConfigureAwait(false);
        if (previous is null || current.Status == HealthStatus.Unhealthy)
        {
            return current;
        }

        var before = await ProbeAsync(previous.Driver, context, cancellationToken).ConfigureAwait(false);
        if (before.Status == HealthStatus.Healthy)
        {
            return current;
        }

        var data = new Dictionary<string, object>(current.Data);
        foreach (var (key, value) in before.Data)
        {
            data["previous_" + key] = value;
        }

        return HealthCheckResult.Degraded(
            $"{current.Description} The previous session driver (MigrateFrom), which sessions not moved yet are read from, " +
            $"is {before.Status}: {before.Description} Those sessions, cookies the driver in use does not know, and destroys fail until it is back.",
            before.Exception,
            data);
    }

    private static Task<HealthCheckResult> ProbeAsync(ISessionDriver storage, HealthCheckContext context, CancellationToken cancellationToken) =>
        storage is IHealthCheck probe
            ? probe.CheckHealthAsync(context, cancellationToken)
            : Task.FromResult(HealthCheckResult.Healthy($"The {storage.GetType().Name} storage is in this process and always available."));
}
