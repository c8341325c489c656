using Asm.Caching.Sessions;
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
/// included): its cookie is <see cref="AsmSessionOptions.Cookie"/> and its timeouts are <see cref="AsmSessionOptions"/>'s.
/// A middleware that reads Asm's cookie hands its key over, and a cookie it could not read is not read again (each
/// read of a forged cookie costs a Data Protection failure). A middleware that reads a cookie of another name (a stock
/// cookie the browser still holds, say) is not heard: Asm's cookie is read here. Which of the two a middleware does is
/// learned from the first request that tells (for "reads Asm's cookie", one with no other cookie that may hold the
/// same key, which a client could send under the middleware's name); a store serves one middleware (it is
/// transient, and the middleware takes it when it is built).
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
        return context.Features.Get<ISessionFeature>()?.Session as AsmSession
            ?? new AsmSession(services, context, PresentedKey(context, sessionKey, isNewSessionKey), lifecycle);
    }

    /// <summary>Whether this store's middleware reads Asm's cookie: <see cref="Unknown"/> until a request tells.</summary>
    private int _middlewareCookie;

    private const int Unknown = 0;
    private const int ReadsAsmCookie = 1;
    private const int ReadsAnotherCookie = 2;

    /// <summary>The key Asm's cookie carries, from the middleware when it read that cookie, else read here.</summary>
    private string? PresentedKey(HttpContext context, string sessionKey, bool isNewSessionKey)
    {
        switch (Volatile.Read(ref _middlewareCookie))
        {
            case ReadsAsmCookie:
                // A cookie it found no key in holds none: it is reported Malformed without a second Data Protection failure.
                return isNewSessionKey ? null : sessionKey;
            case ReadsAnotherCookie:
                return services.Cookie.Read(context);
        }

        if (!context.Request.Cookies.ContainsKey(services.Cookie.Name))
        {
            if (!isNewSessionKey)
            {
                // The key came from another cookie.
                Volatile.Write(ref _middlewareCookie, ReadsAnotherCookie);
            }

            return null;
        }

        var key = services.Cookie.Read(context);
        if (!isNewSessionKey)
        {
            if (key != sessionKey)
            {
                Volatile.Write(ref _middlewareCookie, ReadsAnotherCookie);
            }
            else if (!AnotherCookieMayHoldTheKey(context))
            {
                // Not when another cookie may be Asm's too: a client can send the cookie Asm gave it under the name a
                // middleware reads as well, and one that taught this "reads Asm's cookie" would lose every later session.
                Volatile.Write(ref _middlewareCookie, ReadsAsmCookie);
            }
        }
        else if (SessionKey.TryParse(key, out _))
        {
            // A key the middleware would have taken, had it read this cookie.
            Volatile.Write(ref _middlewareCookie, ReadsAnotherCookie);
        }

        return key;
    }

    /// <summary>
    /// Whether a cookie of another name may unprotect to the key Asm's cookie holds: one of as many Base64 digits
    /// (the payloads of one key are of one length, and neither padding nor white space counts when it is decoded).
    /// </summary>
    private bool AnotherCookieMayHoldTheKey(HttpContext context)
    {
        var digits = SessionCookie.Base64Digits(context.Request.Cookies[services.Cookie.Name]);
        foreach (var (name, value) in context.Request.Cookies)
        {
            if (name != services.Cookie.Name && SessionCookie.Base64Digits(value) == digits)
            {
                return true;
            }
        }

        return false;
    }
}
