namespace Asm.Caching.Caching;

/// <summary>When a cache entry expires: at a fixed time, after a sliding idle period, or the earlier of both.</summary>
/// <param name="Now">The time the entry is written.</param>
/// <param name="AbsoluteExpiresAt">The fixed expiry, if any.</param>
/// <param name="Sliding">The idle period each read extends, if any.</param>
public readonly record struct CacheEntryExpiration(DateTimeOffset Now, DateTimeOffset? AbsoluteExpiresAt, TimeSpan? Sliding)
{
    /// <summary>When the entry expires if it is not read again; <see langword="null"/> for never.</summary>
    public DateTimeOffset? ExpiresAt => NextExpiry(Now, AbsoluteExpiresAt, Sliding);

    /// <summary>
    /// The expiry after a read at <paramref name="now"/>. A sliding period that reaches past the calendar's end (as
    /// <see cref="TimeSpan.MaxValue"/>, which Microsoft's caches take for "slide forever") slides to its end.
    /// </summary>
    public static DateTimeOffset? NextExpiry(DateTimeOffset now, DateTimeOffset? absoluteExpiresAt, TimeSpan? sliding)
    {
        if (sliding is not { } slide)
        {
            return absoluteExpiresAt;
        }

        var slid = slide >= DateTimeOffset.MaxValue - now ? DateTimeOffset.MaxValue : now + slide;
        return absoluteExpiresAt is { } absolute && absolute < slid ? absolute : slid;
    }
}
