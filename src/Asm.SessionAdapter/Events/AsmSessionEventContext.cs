using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>The base of every Asm session event context.</summary>
public abstract class AsmSessionEventContext
{
    /// <summary>Creates the context.</summary>
    protected AsmSessionEventContext(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        HttpContext = httpContext;
    }

    /// <summary>The request.</summary>
    public HttpContext HttpContext { get; }
}
