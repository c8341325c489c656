namespace Asm.Caching.Caching;

/// <summary>
/// Plain key/value operations a driver offers for <see cref="Microsoft.Extensions.Caching.Distributed.IDistributedCache"/>.
/// </summary>
/// <remarks>Keys are arbitrary strings chosen by callers; a driver must map any of them safely onto its storage.</remarks>
public interface ICacheDriver
{
    /// <summary>Returns the value, or <see langword="null"/> when missing or expired; slides a sliding expiration.</summary>
    ValueTask<byte[]?> GetAsync(string key, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Stores a value with its expiration.</summary>
    ValueTask SetAsync(string key, byte[] value, CacheEntryExpiration expiration, CancellationToken cancellationToken);

    /// <summary>Slides the expiration of an entry without reading it.</summary>
    ValueTask RefreshAsync(string key, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Removes an entry.</summary>
    ValueTask RemoveAsync(string key, CancellationToken cancellationToken);
}
