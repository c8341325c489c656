namespace Asm.SessionAdapter.Diagnostics;

/// <summary>The names Asm publishes its metrics and traces under.</summary>
public static class AsmSessionMetricNames
{
    /// <summary>The meter and activity source name.</summary>
    public const string MeterName = "Asm.Session";

    /// <summary>Sessions created (first commit of a new session).</summary>
    public const string Created = "asm.session.created";

    /// <summary>Presented cookies that were not adopted, tagged <c>reason</c>.</summary>
    public const string Invalid = "asm.session.invalid";

    /// <summary>Time spent waiting for a session lock, in milliseconds, tagged <c>outcome</c> (acquired, timeout).</summary>
    public const string LockWait = "asm.session.lock.wait";

    /// <summary>Commits refused because the lock lease was lost.</summary>
    public const string LockLost = "asm.session.lock.lost";

    /// <summary>Requests served through a zombie key.</summary>
    public const string ZombieHits = "asm.session.zombie.hits";

    /// <summary>Session IDs regenerated.</summary>
    public const string Regenerated = "asm.session.regenerated";

    /// <summary>Sessions destroyed.</summary>
    public const string Destroyed = "asm.session.destroyed";

    /// <summary>Client profile changes, tagged <c>outcome</c> (accepted, rejected).</summary>
    public const string ProfileChanges = "asm.session.profile.changes";

    /// <summary>Stock sessions imported (see <c>ImportStockSessions()</c>).</summary>
    public const string Imported = "asm.session.imported";
}
