using System.ComponentModel.DataAnnotations;

namespace Asm.Caching.Drivers.InMemory;

/// <summary>Options of the in-memory driver.</summary>
public sealed class InMemoryDriverOptions
{
    /// <summary>
    /// The most records the driver keeps: sessions (live, expired but not yet swept, destroyed) and cache entries
    /// together. Past it, a new session or a new cache entry is refused with a <see cref="StorageFullException"/>
    /// (the session layer reports it as a <c>SessionStorageException</c> and counts it in
    /// <c>asm.session.refused</c>); expired records are swept first to make room, but a live session or entry is
    /// never evicted. Writes to existing records are never refused.
    /// </summary>
    /// <value>
    /// The default value is 100,000: with sessions of a few kilobytes, a few hundred megabytes at most. Each
    /// session's own size is bounded by the session layer's <c>MaxSessionSize</c>.
    /// </value>
    [Range(1, int.MaxValue, ErrorMessage = "InMemoryDriverOptions.SizeLimit must be at least 1.")]
    public int SizeLimit { get; set; } = 100_000;
}
