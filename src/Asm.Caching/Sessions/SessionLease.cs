namespace Asm.Caching.Sessions;

/// <summary>
/// A lock lease: a token, unique to it, that names the holder, how long the lease lasts, and the fencing value the
/// storage issued when the lease was granted.
/// </summary>
/// <param name="Token">Token of the holder, unique to its lease.</param>
/// <param name="Duration">How long the lease lasts after it is granted or renewed.</param>
/// <param name="Fence">
/// The fencing value: it increases with every lease granted on a session, and a commit guarded by a lease is
/// applied only while the session's fence still equals it. Zero until the lease is granted.
/// </param>
public sealed record SessionLease(string Token, TimeSpan Duration, long Fence = 0)
{
    /// <summary>A random prefix drawn once per process: tokens of different processes never meet.</summary>
    private static readonly ulong ProcessPrefix = BitConverter.ToUInt64(System.Security.Cryptography.RandomNumberGenerator.GetBytes(sizeof(ulong)));

    private static long s_issued;

    /// <summary>Creates a lease request with a fresh token.</summary>
    /// <remarks>
    /// The token is 32 hexadecimal digits: the process's random prefix, then a count of the leases it asked for. It only
    /// has to be unique (it names the holder to the storage and never leaves it), so no random bytes are drawn per lease.
    /// </remarks>
    public static SessionLease Create(TimeSpan duration) => new(NewToken(), duration);

    private static string NewToken() => string.Create(32, (ulong)Interlocked.Increment(ref s_issued), static (token, issued) =>
    {
        ProcessPrefix.TryFormat(token, out _, "x16", System.Globalization.CultureInfo.InvariantCulture);
        issued.TryFormat(token[16..], out _, "x16", System.Globalization.CultureInfo.InvariantCulture);
    });
}
