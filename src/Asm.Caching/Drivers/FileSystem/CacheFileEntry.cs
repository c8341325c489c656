namespace Asm.Caching.Drivers.FileSystem;

/// <summary>The content of one cache entry file.</summary>
/// <param name="ExpiresAt">When the entry expires unless read again; <see langword="null"/> for never.</param>
/// <param name="AbsoluteExpiresAt">The fixed expiry, if any.</param>
/// <param name="Sliding">The idle period each read extends, if any.</param>
/// <param name="Value">The cached bytes.</param>
internal sealed record CacheFileEntry(DateTimeOffset? ExpiresAt, DateTimeOffset? AbsoluteExpiresAt, TimeSpan? Sliding, byte[] Value)
{
    /// <summary>Whether the entry has expired at <paramref name="now"/>.</summary>
    public bool IsExpired(DateTimeOffset now) => ExpiresAt <= now;
}
