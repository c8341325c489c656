using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Asm.Caching.Drivers.Redis;

/// <summary>The Redis driver's health probe: a <c>PING</c> on the driver's own connection.</summary>
internal sealed partial class RedisDriver : IHealthCheck
{
    /// <summary>
    /// Healthy when Redis answers a <c>PING</c> and every server the connection knows is connected; degraded when it
    /// answers but a server (a replica, a Cluster node) is disconnected, or a primary with a <c>maxmemory</c> limit
    /// has an <c>allkeys-*</c> <c>maxmemory-policy</c> (it may evict the user indexes and end-check sets, which have
    /// no expiry; a server that refuses to tell is not judged); the registration's failure status when the
    /// <c>PING</c> fails (Redis unreachable, refusing, or slower than <see cref="RedisDriverOptions.OperationTimeout"/>).
    /// </summary>
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        TimeSpan latency;
        try
        {
            latency = await _connection.PingAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisDriverException ex)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, ex.Message, ex, Data(ex.EndPoints));
        }

        var endPoints = _connection.EndPoints;
        var (disconnected, known) = _connection.ServerStates();
        var evicting = await _connection.EvictingPrimariesAsync(cancellationToken).ConfigureAwait(false);
        var data = Data(endPoints);
        data["latency_ms"] = latency.TotalMilliseconds;
        var answered = string.Create(CultureInfo.InvariantCulture, $"Redis at {endPoints} answered PING in {latency.TotalMilliseconds:0.0} ms");
        List<string> margins = [];
        if (disconnected.Count > 0)
        {
            data["disconnected"] = string.Join(", ", disconnected);
            margins.Add($"{disconnected.Count} of its {known} servers are disconnected: {data["disconnected"]}");
        }

        if (evicting.Count > 0)
        {
            data["maxmemory_policy"] = string.Join(", ", evicting);
            margins.Add(
                $"its maxmemory-policy evicts keys without an expiry ({data["maxmemory_policy"]}), so user indexes and end checks " +
                "can be evicted (a log-out of every device then misses sessions, and their ends are not reported); use a volatile-* policy or noeviction");
        }

        return margins.Count > 0
            ? HealthCheckResult.Degraded($"{answered}, but {string.Join("; and ", margins)}.", data: data)
            : HealthCheckResult.Healthy(answered + ".", data);
    }

    private static Dictionary<string, object> Data(string endPoints) => new() { ["endpoints"] = endPoints };
}
