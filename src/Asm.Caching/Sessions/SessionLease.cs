namespace Asm.Caching.Sessions;

/// <summary>
/// A lock lease: a random token that names the holder, how long the lease lasts, and the fencing value the
/// storage issued when the lease was granted.
/// </summary>
/// <param name="Token">Random token of the holder.</param>
/// <param name="Duration">How long the lease lasts after it is granted or renewed.</param>
/// <param name="Fence">
/// The fencing value: it increases with every lease granted on a session, and a commit guarded by a lease is
/// applied only while the session's fence still equals it. Zero until the lease is granted.
/// </param>
public sealed record SessionLease(string Token, TimeSpan Duration, long Fence = 0)
{
    /// <summary>Creates a lease request with a fresh random token.</summary>
    public static SessionLease Create(TimeSpan duration) =>
        new(Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)), duration);
}
