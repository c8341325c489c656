using Microsoft.Extensions.DependencyInjection;

namespace Asm.Testing.Drivers;

/// <summary>
/// One storage driver under test, started for real. End-to-end suites are written once against this and subclassed
/// per driver.
/// </summary>
public interface IDriverFixture
{
    /// <summary>A name for test output.</summary>
    string Name { get; }

    /// <summary>Whether two apps (or processes) can share one storage: false for the in-memory driver.</summary>
    bool IsShared { get; }

    /// <summary>
    /// Makes <paramref name="builder"/> use this driver on the storage named <paramref name="scope"/>: apps given the
    /// same scope share their sessions, apps given different scopes never see each other's.
    /// </summary>
    void Use(IAsmStorageBuilder builder, string scope);

    /// <summary>Command-line arguments that make the test child app use the same storage.</summary>
    IReadOnlyList<string> ChildArguments(string scope);

    /// <summary>Damages the stored record of <paramref name="sessionId"/> in <paramref name="scope"/> so it cannot be read.</summary>
    Task CorruptSessionAsync(string scope, string sessionId);

    /// <summary>The raw bytes the storage holds for <paramref name="scope"/>, to check that nothing readable leaks.</summary>
    Task<byte[]> DumpAsync(string scope);
}
