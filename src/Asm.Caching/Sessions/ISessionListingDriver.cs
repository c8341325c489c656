namespace Asm.Caching.Sessions;

/// <summary>
/// An optional capability of a <see cref="ISessionDriver"/>: listing the ids of the session records it stores (live,
/// expired or tombstones), so that they can be moved in bulk (<c>MigrateFrom</c>'s background mover). The in-memory
/// and Redis drivers have it; the filesystem driver does not (its file names are hashes of the ids).
/// </summary>
public interface ISessionListingDriver
{
    /// <summary>
    /// Lists the ids of the stored session records. Records created or removed while the listing runs may or may not
    /// be listed; an id may be listed twice.
    /// </summary>
    IAsyncEnumerable<string> ListSessionIdsAsync(CancellationToken cancellationToken);
}
