namespace Asm.SessionAdapter;

/// <summary>Why a presented session cookie was not adopted.</summary>
public enum InvalidSessionReason
{
    /// <summary>The cookie does not unprotect, or does not hold a well-formed key.</summary>
    Malformed,

    /// <summary>No session answers to the key.</summary>
    Unknown,

    /// <summary>The session passed its idle or absolute timeout.</summary>
    Expired,

    /// <summary>The session was destroyed.</summary>
    Destroyed,

    /// <summary>The stored session could not be read or decrypted.</summary>
    Corrupt,

    /// <summary>The key was replaced by a regeneration and its zombie window has closed: reuse after the window is a hijack signal.</summary>
    ZombieExpired,

    /// <summary>
    /// The key was replaced by a regeneration and is still inside its zombie window, but the request's client profile
    /// differs from that of the request that regenerated: a zombie key serves only the browser that logged in.
    /// </summary>
    ZombieProfileMismatch,
}
