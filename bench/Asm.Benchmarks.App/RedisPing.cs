using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace Asm.Benchmarks.App;

/// <summary>
/// <c>GET /redis/ping?n=N</c>: N sequential PINGs from this process through StackExchange.Redis, the client the Redis
/// driver uses, reported as <c>p50_us=.. p99_us=.. mean_us=..</c>. The round trip a lock hand-off is measured against.
/// </summary>
internal static class RedisPing
{
    public static void Map(WebApplication app, string configuration)
    {
        var connection = new Lazy<Task<ConnectionMultiplexer>>(() => ConnectionMultiplexer.ConnectAsync(configuration));
        app.MapGet("/redis/ping", async (int? n) =>
        {
            var database = (await connection.Value).GetDatabase();
            var count = Math.Clamp(n ?? 2000, 10, 1_000_000);
            for (var i = 0; i < 200; i++)
            {
                await database.PingAsync();
            }

            var samples = new double[count];
            for (var i = 0; i < count; i++)
            {
                var started = Stopwatch.GetTimestamp();
                await database.PingAsync();
                samples[i] = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
            }

            Array.Sort(samples);
            return string.Create(
                CultureInfo.InvariantCulture,
                $"p50_us={samples[count / 2]:0.0} p99_us={samples[(int)(count * 0.99)]:0.0} mean_us={samples.Average():0.0}");
        });
    }
}
