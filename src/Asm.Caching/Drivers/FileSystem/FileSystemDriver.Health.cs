using System.Security.Cryptography;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>The filesystem driver's health probe: the directory takes a write.</summary>
internal sealed partial class FileSystemDriver : IHealthCheck
{
    /// <summary>
    /// Writes, flushes and deletes a small file in the directory, named like the driver's temporary files (so the
    /// sweeper removes one a crash left behind), after creating the directories if a start on a disk that could not
    /// take them left them missing, or they were removed since. Unhealthy (the registration's failure status) when
    /// the directory cannot be created, or is read-only, full or not ours.
    /// </summary>
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var probe = Path.Combine(DirectoryPath, $".health.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}{TempExtension}");
        var data = new Dictionary<string, object> { ["directory"] = DirectoryPath };
        try
        {
            // A directory removed while the app ran is created again, as the next write would.
            if (!Directory.Exists(DirectoryPath))
            {
                _directoriesReady = false;
            }

            EnsureDirectories();
            await using (var stream = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous))
            {
                await stream.WriteAsync(new byte[] { 1 }, cancellationToken).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }

            File.Delete(probe);
            return HealthCheckResult.Healthy($"The session directory {DirectoryPath} is writable.", data);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(probe);
            return new HealthCheckResult(
                context.Registration.FailureStatus,
                $"The session directory {DirectoryPath} is not writable: {ex.Message}",
                ex,
                data);
        }
    }
}
