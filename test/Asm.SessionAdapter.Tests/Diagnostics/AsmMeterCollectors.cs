using System.Diagnostics.Metrics;
using Asm.SessionAdapter.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Asm.SessionAdapter.Tests.Diagnostics;

/// <summary>Collects the counters of one app's Asm meter (other tests' apps publish the same names in parallel).</summary>
internal static class AsmMeterCollectors
{
    /// <summary>Collects counter <paramref name="name"/> of <paramref name="app"/>'s Asm meter from now on.</summary>
    public static MetricCollector<long> CollectCounter(this IServiceProvider app, string name) =>
        new(app.GetRequiredService<IMeterFactory>(), AsmSessionMetricNames.MeterName, name);

    /// <summary>The sum of every measurement collected so far.</summary>
    public static long Total(this MetricCollector<long> collector) => collector.GetMeasurementSnapshot().Sum(m => m.Value);
}
