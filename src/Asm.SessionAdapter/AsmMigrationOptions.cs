using System.ComponentModel.DataAnnotations;

namespace Asm.SessionAdapter;

/// <summary>How <c>MigrateFrom</c> moves sessions besides moving each on its first use. Validated at start-up.</summary>
public sealed class AsmMigrationOptions
{
    /// <summary>
    /// Whether a background task also moves every session the previous driver stores, at
    /// <see cref="SessionsPerSecond"/>, and logs when none is left. It needs a previous driver that can list its
    /// sessions (in-memory, Redis); with the filesystem driver it logs that it cannot and sessions move on first use.
    /// Several servers may run it at once: a session is moved once.
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool MoveInBackground { get; set; }

    /// <summary>The most sessions the background task moves per second, on each server that runs it.</summary>
    /// <value>The default value is 200.</value>
    [Range(1, 1_000_000)]
    public int SessionsPerSecond { get; set; } = 200;
}
