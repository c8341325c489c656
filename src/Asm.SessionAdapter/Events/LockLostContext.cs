using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>
/// A request's lock lease was lost (it expired and another request took the lock), so its commit was refused and
/// nothing it changed was written.
/// </summary>
public sealed class LockLostContext(HttpContext httpContext, string sessionHash, SessionLockMode lockMode) : AsmSessionEventContext(httpContext, sessionHash)
{
    /// <summary>The lock mode the request held the lock in.</summary>
    public SessionLockMode LockMode { get; } = lockMode;
}
