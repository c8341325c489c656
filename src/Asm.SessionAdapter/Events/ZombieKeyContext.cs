using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>
/// A request presented a key that a regeneration replaced, inside its zombie window, from the client profile of the
/// request that regenerated (or with profiles off): it is served the live session but never receives the current key.
/// <see cref="Reject"/> gives it a fresh, empty session instead; throwing from the handler refuses the request, and no
/// session cookie is written then.
/// </summary>
public sealed class ZombieKeyContext(HttpContext httpContext, string sessionHash) : AsmSessionEventContext(httpContext, sessionHash)
{
    /// <summary>Whether <see cref="Reject"/> was called.</summary>
    public bool IsRejected { get; private set; }

    /// <summary>Refuses the session to this request, which gets a fresh, empty one instead; the zombie cookie is deleted.</summary>
    public void Reject() => IsRejected = true;
}
