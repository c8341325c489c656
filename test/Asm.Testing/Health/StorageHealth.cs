using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Xunit;

namespace Asm.Testing.Health;

/// <summary>Runs the storage health check (<c>AddAsmSessionStorage()</c>) the way a health endpoint does.</summary>
public static class StorageHealth
{
    /// <summary>How long a status change may take to show (the Redis client notices one within seconds).</summary>
    public static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The storage check's entry in a report of every check.</summary>
    public static async Task<HealthReportEntry> CheckAsync(HealthCheckService health) =>
        (await health.CheckHealthAsync()).Entries[AsmStorageHealthChecksBuilderExtensions.DefaultName];

    /// <summary>Checks until the status is <paramref name="expected"/>, failing after <see cref="RecoveryTimeout"/>.</summary>
    public static async Task<HealthReportEntry> WaitForStatusAsync(HealthCheckService health, HealthStatus expected, string when)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var entry = await CheckAsync(health);
            if (entry.Status == expected)
            {
                return entry;
            }

            Assert.True(watch.Elapsed < RecoveryTimeout, $"The check was not {expected} {when} within {RecoveryTimeout.TotalSeconds} s: {entry.Status}, {entry.Description}");
            await Task.Delay(50);
        }
    }
}
