using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>
/// A request presented a session cookie that was not adopted; it gets a fresh session under a new key.
/// <see cref="AsmSessionEventContext.SessionHash"/> names the fresh session. Throw from the handler to refuse the request.
/// </summary>
public sealed class InvalidSessionContext(HttpContext httpContext, string sessionHash, InvalidSessionReason reason)
    : AsmSessionEventContext(httpContext, sessionHash)
{
    /// <summary>Why the cookie was not adopted.</summary>
    public InvalidSessionReason Reason { get; } = reason;
}
