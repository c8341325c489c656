using Asm.SessionAdapter.Users;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;

namespace Asm.SessionAdapter;

/// <summary>
/// The <see cref="ISessionStore"/> the stock session middleware asks for each request's session.
/// </summary>
/// <remarks>
/// The middleware's own <c>tryEstablishSession</c> is never called: it would write the middleware's cookie, with
/// the middleware's key, over Asm's. Asm writes its cookie itself (see <see cref="SessionCookie"/>).
/// </remarks>
internal sealed class AsmSessionStore(AsmSessionServices services, SessionLifecycle lifecycle, IHttpContextAccessor httpContextAccessor) : ISessionStore
{
    public ISession Create(string sessionKey, TimeSpan idleTimeout, TimeSpan ioTimeout, Func<bool> tryEstablishSession, bool isNewSessionKey)
    {
        var context = httpContextAccessor.HttpContext ?? throw new InvalidOperationException(
            "Asm sessions are created by the session middleware for an HTTP request; no request is in progress.");
        return new AsmSession(services, context, isNewSessionKey ? null : sessionKey, lifecycle);
    }
}
