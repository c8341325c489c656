using Asm.Caching.Sessions;

namespace Asm.Caching.Health;

/// <summary>
/// The driver sessions are still read from while they move to the driver in use (<c>MigrateFrom</c>), which the
/// health check probes beside it.
/// </summary>
internal interface IPreviousStorage
{
    /// <summary>The previous driver.</summary>
    ISessionDriver Driver { get; }
}
