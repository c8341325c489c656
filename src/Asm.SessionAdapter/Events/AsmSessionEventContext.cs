using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>The base of every Asm session event context.</summary>
public abstract class AsmSessionEventContext
{
    /// <summary>Creates the context.</summary>
    protected AsmSessionEventContext(HttpContext httpContext, string sessionHash)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        HttpContext = httpContext;
        SessionHash = sessionHash;
    }

    /// <summary>The request. Its session may be used from the handler.</summary>
    public HttpContext HttpContext { get; }

    /// <summary>
    /// A short hash of the id of the session the request now has, for logs and correlation (never the key itself).
    /// </summary>
    public string SessionHash { get; }
}
