using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Asm.SessionAdapter.Diagnostics;

/// <summary>Asm's instruments. Never tagged with keys or ids.</summary>
internal sealed class AsmSessionMetrics
{
    public static readonly ActivitySource ActivitySource = new(AsmSessionMetricNames.MeterName);

    private readonly Counter<long> _created;
    private readonly Counter<long> _invalid;
    private readonly Histogram<double> _lockWait;
    private readonly Counter<long> _lockLost;
    private readonly Counter<long> _zombieHits;
    private readonly Counter<long> _regenerated;
    private readonly Counter<long> _destroyed;
    private readonly Counter<long> _profileChanges;
    private readonly Counter<long> _imported;

    public AsmSessionMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(AsmSessionMetricNames.MeterName);
        _created = meter.CreateCounter<long>(AsmSessionMetricNames.Created, "{session}", "Sessions created.");
        _invalid = meter.CreateCounter<long>(AsmSessionMetricNames.Invalid, "{request}", "Presented session cookies that were not adopted.");
        _lockWait = meter.CreateHistogram<double>(AsmSessionMetricNames.LockWait, "ms", "Time spent waiting for a session lock.");
        _lockLost = meter.CreateCounter<long>(AsmSessionMetricNames.LockLost, "{commit}", "Commits refused because the lock lease was lost.");
        _zombieHits = meter.CreateCounter<long>(AsmSessionMetricNames.ZombieHits, "{request}", "Requests served through a zombie key.");
        _regenerated = meter.CreateCounter<long>(AsmSessionMetricNames.Regenerated, "{session}", "Session IDs regenerated.");
        _destroyed = meter.CreateCounter<long>(AsmSessionMetricNames.Destroyed, "{session}", "Sessions destroyed.");
        _profileChanges = meter.CreateCounter<long>(AsmSessionMetricNames.ProfileChanges, "{request}", "Client profile changes.");
        _imported = meter.CreateCounter<long>(AsmSessionMetricNames.Imported, "{session}", "Stock sessions imported.");
    }

    public void Created() => _created.Add(1);

    public void Invalid(InvalidSessionReason reason) => _invalid.Add(1, new KeyValuePair<string, object?>("reason", reason.ToString()));

    public void LockWaited(TimeSpan waited, bool acquired) =>
        _lockWait.Record(waited.TotalMilliseconds, new KeyValuePair<string, object?>("outcome", acquired ? "acquired" : "timeout"));

    public void LockLost() => _lockLost.Add(1);

    public void ZombieHit() => _zombieHits.Add(1);

    public void Regenerated() => _regenerated.Add(1);

    public void Destroyed() => _destroyed.Add(1);

    public void ProfileChanged(bool rejected) =>
        _profileChanges.Add(1, new KeyValuePair<string, object?>("outcome", rejected ? "rejected" : "accepted"));

    public void Imported() => _imported.Add(1);
}
