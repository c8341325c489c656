using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Asm.SessionAdapter.Diagnostics;

/// <summary>Asm's instruments. Never tagged with keys, ids or user ids.</summary>
internal sealed class AsmSessionMetrics
{
    public static readonly ActivitySource ActivitySource = new(AsmSessionMetricNames.MeterName);

    private readonly Counter<long> _created;
    private readonly Counter<long> _invalid;
    private readonly Histogram<double> _lockWait;
    private readonly Counter<long> _lockLost;
    private readonly Counter<long> _zombieAccessed;
    private readonly Counter<long> _regenerated;
    private readonly Counter<long> _destroyed;
    private readonly Counter<long> _profileChanged;
    private readonly Counter<long> _imported;
    private readonly Counter<long> _userBound;
    private readonly Counter<long> _ended;
    private readonly Counter<long> _migrated;
    private readonly Counter<long> _refused;

    public AsmSessionMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(AsmSessionMetricNames.MeterName);
        _created = meter.CreateCounter<long>(AsmSessionMetricNames.Created, "{session}", "Sessions created.");
        _invalid = meter.CreateCounter<long>(AsmSessionMetricNames.Invalid, "{request}", "Presented session cookies that were not adopted.");
        _lockWait = meter.CreateHistogram<double>(
            AsmSessionMetricNames.LockWaitDuration,
            "s",
            "Time spent waiting for a session lock.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _lockLost = meter.CreateCounter<long>(AsmSessionMetricNames.LockLost, "{commit}", "Commits refused because the lock lease was lost.");
        _zombieAccessed = meter.CreateCounter<long>(AsmSessionMetricNames.ZombieAccessed, "{request}", "Requests served through a zombie key.");
        _regenerated = meter.CreateCounter<long>(AsmSessionMetricNames.Regenerated, "{session}", "Session keys regenerated.");
        _destroyed = meter.CreateCounter<long>(AsmSessionMetricNames.Destroyed, "{session}", "Sessions destroyed.");
        _profileChanged = meter.CreateCounter<long>(AsmSessionMetricNames.ProfileChanged, "{request}", "Client profile changes.");
        _imported = meter.CreateCounter<long>(AsmSessionMetricNames.Imported, "{session}", "Stock sessions imported.");
        _userBound = meter.CreateCounter<long>(AsmSessionMetricNames.UserBound, "{session}", "Sessions bound to a user.");
        _ended = meter.CreateCounter<long>(AsmSessionMetricNames.Ended, "{session}", "Session ends reported, once per session.");
        _migrated = meter.CreateCounter<long>(AsmSessionMetricNames.Migrated, "{session}", "Sessions moved from the previous driver.");
        _refused = meter.CreateCounter<long>(AsmSessionMetricNames.Refused, "{session}", "New sessions refused because the storage was full.");
    }

    public void Created() => _created.Add(1);

    public void Invalid(InvalidSessionReason reason) =>
        _invalid.Add(1, new KeyValuePair<string, object?>(AsmSessionMetricNames.InvalidReason, reason.ToString()));

    public void LockWaited(TimeSpan waited, bool acquired) =>
        _lockWait.Record(waited.TotalSeconds, new KeyValuePair<string, object?>(AsmSessionMetricNames.LockOutcome, acquired ? "acquired" : "timeout"));

    public void LockLost() => _lockLost.Add(1);

    public void ZombieHit() => _zombieAccessed.Add(1);

    public void Regenerated() => _regenerated.Add(1);

    public void Destroyed() => _destroyed.Add(1);

    public void Refused() => _refused.Add(1);

    public void ProfileChanged(bool rejected) =>
        _profileChanged.Add(1, new KeyValuePair<string, object?>(AsmSessionMetricNames.ProfileOutcome, rejected ? "rejected" : "accepted"));

    public void Imported() => _imported.Add(1);

    public void Migrated() => _migrated.Add(1);

    public void UserBound() => _userBound.Add(1);

    public void Ended(SessionEndReason reason) =>
        _ended.Add(1, new KeyValuePair<string, object?>(AsmSessionMetricNames.EndedReason, reason.ToString()));

    /// <summary>An enum value as an outcome attribute value, in snake_case (<c>ZombieExpired</c> is <c>zombie_expired</c>).</summary>
    /// <remarks>The names of the defined values are built once, so that a request's outcome allocates nothing.</remarks>
    public static string OutcomeOf<T>(T value)
        where T : struct, Enum =>
        OutcomeNames<T>.Names.TryGetValue(value, out var name) ? name : SnakeCase(value.ToString());

    private static string SnakeCase(string name)
    {
        var builder = new System.Text.StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(name[i]));
        }

        return builder.ToString();
    }

    /// <summary>Tags an activity with its outcome, and with error status when it failed.</summary>
    public static void SetOutcome(Activity? activity, string outcome, bool error = false)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag(AsmSessionMetricNames.Outcome, outcome);
        if (error)
        {
            activity.SetStatus(ActivityStatusCode.Error, outcome);
        }
    }

    /// <summary>Marks an activity failed by <paramref name="exception"/>, with the OpenTelemetry <c>error.type</c>.</summary>
    public static void SetError(Activity? activity, Exception exception)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag("error.type", exception.GetType().FullName);
        activity.SetTag(AsmSessionMetricNames.Outcome, "error");
        activity.SetStatus(ActivityStatusCode.Error, exception.GetType().Name);
    }

    /// <summary>The outcome names of <typeparamref name="T"/>'s defined values.</summary>
    private static class OutcomeNames<T>
        where T : struct, Enum
    {
        public static readonly Dictionary<T, string> Names = Enum.GetValues<T>().Distinct().ToDictionary(v => v, v => SnakeCase(v.ToString()));
    }
}
