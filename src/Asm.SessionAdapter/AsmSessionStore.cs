using Asm.SessionAdapter.Sessions;
using Asm.SessionAdapter.Users;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter;

/// <summary>
/// The <see cref="ISessionStore"/> the stock session middleware asks for each request's session.
/// </summary>
/// <remarks>
/// <para>
/// The middleware's own <c>tryEstablishSession</c> is never called: it would write the middleware's cookie, with
/// the middleware's key, over Asm's. Asm writes its cookie itself (see <see cref="SessionCookie"/>).
/// </para>
/// <para>
/// The session is Asm's whatever <c>SessionOptions</c> the middleware was given (<c>app.UseSession(options)</c>
/// included): its cookie is <see cref="AsmSessionOptions.Cookie"/>, read here when the middleware, reading a cookie
/// of another name, found none, and its timeouts are <see cref="AsmSessionOptions"/>'s.
/// </para>
/// <para>
/// A request has one session, however many session middlewares it passes (<c>app.UseSession()</c> called twice, or
/// again in a branch): an inner middleware is given the session of the outer one, whose feature is still set. Two
/// sessions of one request would each take the session's lock, and the second would wait for the first until
/// <see cref="AsmSessionOptions.LockWaitTimeout"/>. The innermost middleware's final commit ends it.
/// </para>
/// </remarks>
internal sealed class AsmSessionStore(AsmSessionServices services, SessionLifecycle lifecycle, IServiceProvider provider) : ISessionStore
{
    // The app's own accessor, when it registered one: it also knows a context the app made by hand.
    private readonly IHttpContextAccessor? _accessor = provider.GetService<IHttpContextAccessor>();

    public ISession Create(string sessionKey, TimeSpan idleTimeout, TimeSpan ioTimeout, Func<bool> tryEstablishSession, bool isNewSessionKey)
    {
        var context = (_accessor is null ? SessionRequestContext.Request : _accessor.HttpContext) ?? throw new InvalidOperationException(
            "Asm sessions are created by the session middleware for an HTTP request of a pipeline the host built (where " +
            "AddAsmSession's startup filter runs first), or one the app's own IHttpContextAccessor knows; no such request is in progress.");
        services.CheckMiddlewareOptions(idleTimeout, ioTimeout);
        // A middleware that found no key under its cookie may have been given a cookie name of its own
        // (app.UseSession(options)): Asm's cookie, which it did not read, is read here, or every request would start over.
        return context.Features.Get<ISessionFeature>()?.Session as AsmSession
            ?? new AsmSession(services, context, isNewSessionKey ? services.Cookie.Read(context) : sessionKey, lifecycle);
    }
}
