using Asm.Caching.Sessions;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Asm.Caching.Health;

/// <summary>
/// The health of the storage driver in use: the driver's own probe when it has one (Redis answers a <c>PING</c>, the
/// filesystem directory takes a write), otherwise healthy (the in-memory driver is available while the process
/// runs).
/// </summary>
internal sealed class AsmStorageHealthCheck(ISessionDriver driver) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        driver is IHealthCheck probe
            ? probe.CheckHealthAsync(context, cancellationToken)
            : Task.FromResult(HealthCheckResult.Healthy($"The {driver.GetType().Name} storage is in this process and always available."));
}
