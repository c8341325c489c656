using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Asm.SessionAdapter.Diagnostics;
using Asm.Testing.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter.Tests.Diagnostics;

public sealed class AsmSessionMetricsTests
{
    [Fact]
    public async Task CreatedAndInvalidSessions_AreCountedAndTaggedByReasonNeverByKey()
    {
        await using var app = await SessionApp.StartAsync(b => b.UseInMemoryDriver(), a => a.MapPost("/set", (HttpContext c) => c.Session.SetString("a", "b")));
        var meters = app.Services.GetRequiredService<IMeterFactory>();
        var measurements = new ConcurrentQueue<(string Name, long Value, KeyValuePair<string, object?>[] Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            // Only this app's meter: other tests' apps publish instruments of the same name in parallel.
            if (instrument.Meter.Name == AsmSessionMetricNames.MeterName && instrument.Meter.Scope == meters)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => measurements.Enqueue((instrument.Name, value, tags.ToArray())));
        listener.Start();

        var client = app.CreateClient();
        await client.PostAsync("/set", null);
        var stranger = app.CreateClient();
        stranger.DefaultRequestHeaders.Add("Cookie", ".AspNetCore.Session=garbage");
        await stranger.PostAsync("/set", null);

        Assert.Equal(2, measurements.Count(m => m.Name == AsmSessionMetricNames.Created));
        var invalid = Assert.Single(measurements, m => m.Name == AsmSessionMetricNames.Invalid);
        Assert.Equal([new KeyValuePair<string, object?>("reason", "Malformed")], invalid.Tags);
        Assert.All(measurements, m => Assert.All(m.Tags, t => Assert.Contains(t.Key, new[] { "reason", "outcome" })));
    }
}
