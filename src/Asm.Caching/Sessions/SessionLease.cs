using System.Buffers.Text;
using System.Numerics;
using System.Security.Cryptography;

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
    /// <summary>The URL-safe Base64 alphabet, in which tokens are written.</summary>
    private const string Digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// <summary>A random prefix drawn once per process (64 bits in 11 characters): tokens of different processes never meet.</summary>
    private static readonly string ProcessPrefix = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(sizeof(ulong)));

    private static long s_issued;

    /// <summary>Creates a lease request with a fresh token.</summary>
    /// <remarks>
    /// The token is the process's random prefix, then a count of the leases it asked for in as few Base64 digits as it
    /// needs (12 to 22 characters in all). It only has to be unique (it names the holder to the storage and never leaves
    /// it), so no random bytes are drawn per lease, and it is short because every exclusive request makes one.
    /// </remarks>
    public static SessionLease Create(TimeSpan duration) => new(TokenOf((ulong)Interlocked.Increment(ref s_issued)), duration);

    /// <summary>The token of this process's lease number <paramref name="issued"/>.</summary>
    internal static string TokenOf(ulong issued)
    {
        var countDigits = (64 - BitOperations.LeadingZeroCount(issued) + 5) / 6;
        return string.Create(ProcessPrefix.Length + countDigits, issued, static (token, issued) =>
        {
            ProcessPrefix.CopyTo(token);
            for (var i = token.Length - 1; i >= ProcessPrefix.Length; i--, issued >>= 6)
            {
                token[i] = Digits[(int)(issued & 63)];
            }
        });
    }
}
