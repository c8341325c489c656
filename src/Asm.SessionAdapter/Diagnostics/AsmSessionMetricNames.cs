namespace Asm.SessionAdapter.Diagnostics;

/// <summary>
/// The names Asm publishes its metrics, traces and their attributes under, after the OpenTelemetry conventions:
/// instruments <c>asm.session.*</c>, one past-tense name per counted event, durations in seconds (<c>*.duration</c>,
/// unit <c>s</c>), attributes namespaced under the instrument they describe.
/// </summary>
public static class AsmSessionMetricNames
{
    /// <summary>The meter and activity source name.</summary>
    public const string MeterName = "Asm.Session";

    /// <summary>Sessions created (first commit of a new session).</summary>
    public const string Created = "asm.session.created";

    /// <summary>Presented cookies that were not adopted, tagged <see cref="InvalidReason"/>.</summary>
    public const string Invalid = "asm.session.invalid";

    /// <summary>Time spent waiting for a session lock, in seconds, tagged <see cref="LockOutcome"/> (acquired, timeout).</summary>
    public const string LockWaitDuration = "asm.session.lock.wait.duration";

    /// <summary>Commits refused because the lock lease was lost.</summary>
    public const string LockLost = "asm.session.lock.lost";

    /// <summary>Requests served through a zombie key.</summary>
    public const string ZombieAccessed = "asm.session.zombie.accessed";

    /// <summary>Session keys regenerated (by <c>RegenerateIdAsync</c> or <c>BindUserAsync</c>).</summary>
    public const string Regenerated = "asm.session.regenerated";

    /// <summary>Sessions destroyed by a request or by <c>IAsmSessionManager</c>.</summary>
    public const string Destroyed = "asm.session.destroyed";

    /// <summary>Client profile changes, tagged <see cref="ProfileOutcome"/> (accepted, rejected).</summary>
    public const string ProfileChanged = "asm.session.profile.changed";

    /// <summary>Stock sessions imported (see <c>ImportStockSessions()</c>).</summary>
    public const string Imported = "asm.session.imported";

    /// <summary>Sessions bound to a user.</summary>
    public const string UserBound = "asm.session.user.bound";

    /// <summary>Session ends reported to <c>OnSessionEnded</c> (once per session), tagged <see cref="EndedReason"/>.</summary>
    public const string Ended = "asm.session.ended";

    /// <summary>New sessions the storage refused because it was full (for example the in-memory driver's <c>SizeLimit</c>).</summary>
    public const string Refused = "asm.session.refused";

    /// <summary>Why a cookie was not adopted: an <c>InvalidSessionReason</c> name.</summary>
    public const string InvalidReason = "asm.session.invalid.reason";

    /// <summary>How a lock wait ended: <c>acquired</c> or <c>timeout</c>.</summary>
    public const string LockOutcome = "asm.session.lock.outcome";

    /// <summary>What became of a new client profile: <c>accepted</c> or <c>rejected</c>.</summary>
    public const string ProfileOutcome = "asm.session.profile.outcome";

    /// <summary>Why a session ended: a <c>SessionEndReason</c> name.</summary>
    public const string EndedReason = "asm.session.ended.reason";

    /// <summary>The <c>asm.session.load</c> activity: one load of a request's session.</summary>
    public const string LoadActivity = "asm.session.load";

    /// <summary>The <c>asm.session.commit</c> activity: one commit (or lock release) of a request's session.</summary>
    public const string CommitActivity = "asm.session.commit";

    /// <summary>
    /// The outcome of a load or commit activity, in snake_case: for a load <c>new</c>, <c>malformed</c> or the storage's answer
    /// (<c>found</c>, <c>zombie</c>, <c>unknown</c>, <c>expired</c>, <c>destroyed</c>, <c>zombie_expired</c>, <c>corrupt</c>); for a
    /// commit <c>committed</c>, <c>lock_lost</c>, <c>not_found</c>, <c>released</c> or <c>unchanged</c>; <c>error</c> when it threw.
    /// Refused commits, corrupt loads and exceptions also set the activity's status to Error.
    /// </summary>
    public const string Outcome = "asm.session.outcome";

    /// <summary>Sessions moved from the previous driver (see <c>MigrateFrom()</c>).</summary>
    public const string Migrated = "asm.session.migrated";
}
