using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>A new session was stored, by the commit of the request that first wrote to it.</summary>
public sealed class SessionCreatedContext(HttpContext httpContext, string sessionHash) : AsmSessionEventContext(httpContext, sessionHash);
