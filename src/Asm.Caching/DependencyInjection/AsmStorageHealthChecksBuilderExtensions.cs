using Asm.Caching.Health;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the health check of Asm's session storage to ASP.NET Core health checks.</summary>
public static class AsmStorageHealthChecksBuilderExtensions
{
    /// <summary>The name the check is registered under unless another is given.</summary>
    public const string DefaultName = "asm-session-storage";

    /// <summary>
    /// Checks the storage driver that Asm sessions (or Asm's <c>IDistributedCache</c>) use: Redis answers a
    /// <c>PING</c> on the driver's own connection, the filesystem directory takes a write, the in-memory driver is
    /// always healthy. A probe that fails reports <paramref name="failureStatus"/>; Redis answering while one of its
    /// servers (a replica, a Cluster node) is disconnected reports <see cref="HealthStatus.Degraded"/>. With
    /// <c>MigrateFrom</c>, the previous driver is probed too, and its failure reports <see cref="HealthStatus.Degraded"/>
    /// (sessions not moved yet cannot be read), naming it.
    /// </summary>
    /// <param name="builder">The health checks builder from <c>services.AddHealthChecks()</c>.</param>
    /// <param name="name">The check's name; <see cref="DefaultName"/> unless given.</param>
    /// <param name="failureStatus">What a failed probe reports; <see cref="HealthStatus.Unhealthy"/> unless given.</param>
    /// <param name="tags">Tags to filter checks by, for example <c>"ready"</c>.</param>
    /// <param name="timeout">How long the check may take before it counts as failed; no limit of its own unless given.</param>
    /// <returns>The same builder, for chaining.</returns>
    public static IHealthChecksBuilder AddAsmSessionStorage(
        this IHealthChecksBuilder builder,
        string name = DefaultName,
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null,
        TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return builder.Add(new HealthCheckRegistration(
            name,
            services => ActivatorUtilities.CreateInstance<AsmStorageHealthCheck>(services),
            failureStatus,
            tags,
            timeout));
    }
}
