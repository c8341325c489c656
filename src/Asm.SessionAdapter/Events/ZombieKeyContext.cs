using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>
/// A request presented a key that a regeneration replaced, inside its zombie window: it is served the live session
/// and receives the current key. Throw from the handler to refuse the request.
/// </summary>
public sealed class ZombieKeyContext(HttpContext httpContext, string sessionHash) : AsmSessionEventContext(httpContext, sessionHash);
