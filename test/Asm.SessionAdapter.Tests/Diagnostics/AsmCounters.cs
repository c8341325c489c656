using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Asm.SessionAdapter.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Diagnostics;

/// <summary>Adds up the counters one app's Asm meter publishes (other tests' apps publish the same names in parallel).</summary>
internal sealed class AsmCounters : IDisposable
{
    private readonly ConcurrentDictionary<string, long> _totals = new(StringComparer.Ordinal);
    private readonly MeterListener _listener = new();

    public AsmCounters(IServiceProvider app)
    {
        var meters = app.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == AsmSessionMetricNames.MeterName && instrument.Meter.Scope == meters)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => _totals.AddOrUpdate(instrument.Name, value, (_, total) => total + value));
        _listener.Start();
    }

    /// <summary>The total of counter <paramref name="name"/> since this was created.</summary>
    public long this[string name] => _totals.GetValueOrDefault(name);

    public void Dispose() => _listener.Dispose();
}
