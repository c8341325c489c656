using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter.Sessions;

/// <summary>
/// The one place that decides whether a request's response carries the session cookie, and writes it when the
/// response starts: after the handler and every session event handler have run, so that a handler that throws
/// leaves no key in the response. Sending the key wins over deleting the presented cookie.
/// </summary>
/// <param name="context">The request.</param>
/// <param name="cookie">How the cookie is written.</param>
/// <param name="currentKey">
/// The session's key when the response starts (a regeneration may replace it after it was asked for), read from
/// <paramref name="keyOwner"/> (so that a static function will do, and no closure is made per request).
/// </param>
/// <param name="keyOwner">What holds the key.</param>
internal sealed class SessionCookieWriter(HttpContext context, SessionCookie cookie, Func<object, string> currentKey, object keyOwner)
{
    private bool _sendKey;
    private bool _delete;
    private bool _registered;

    /// <summary>What the response will do with the session cookie.</summary>
    public SessionCookieDecision Decision =>
        _sendKey ? SessionCookieDecision.SendKey : _delete ? SessionCookieDecision.Delete : SessionCookieDecision.None;

    /// <summary>Whether the response will carry the session's key.</summary>
    public bool SendsKey => _sendKey;

    /// <summary>
    /// Asks now (as the session middleware makes the request's session) to be run when the response starts, as the
    /// stock middleware does for a request without a usable cookie: a callback the app registers later with
    /// <c>Response.OnStarting</c> runs before this one and may still write the session. A request with a cookie needs
    /// it too, since the session the cookie names may be gone and a write then makes a new one. One registered while
    /// the response is starting (a first read of the session inside such a callback) would never run.
    /// </summary>
    public void RegisterEarly() => Register();

    /// <summary>Sends the session's key in the response (this wins over a delete).</summary>
    public void SendKey()
    {
        _sendKey = true;
        Register();
    }

    /// <summary>Sends no key after all (the session it named was never stored, or was replaced by a fresh one).</summary>
    public void CancelKey() => _sendKey = false;

    /// <summary>Deletes the presented cookie in the response, unless a key is sent after all or the response has started.</summary>
    public void Delete()
    {
        if (!context.Response.HasStarted)
        {
            _delete = true;
            Register();
        }
    }

    /// <summary>Sends the key of a session that is about to be stored for the first time.</summary>
    /// <exception cref="InvalidOperationException">The response has started: the cookie could no longer be sent.</exception>
    public void Establish()
    {
        if (context.Response.HasStarted)
        {
            throw new InvalidOperationException("The session cannot be established after the response has started.");
        }

        SendKey();
    }

    /// <summary>Checks that a new key could still be sent.</summary>
    /// <param name="what">What would need the new key ("regenerated").</param>
    /// <exception cref="InvalidOperationException">The response has started.</exception>
    public void EnsureResponseNotStarted(string what)
    {
        if (context.Response.HasStarted)
        {
            throw new InvalidOperationException($"The session cannot be {what} after the response has started: the new cookie could not be sent.");
        }
    }

    /// <summary>Writes what <see cref="Decision"/> says into the response headers (run as the response starts).</summary>
    public void Write()
    {
        switch (Decision)
        {
            case SessionCookieDecision.SendKey:
                cookie.Append(context, currentKey(keyOwner));
                break;
            case SessionCookieDecision.Delete:
                cookie.Delete(context);
                break;
        }
    }

    private void Register()
    {
        if (_registered)
        {
            return;
        }

        _registered = true;
        context.Response.OnStarting(static state =>
        {
            ((SessionCookieWriter)state).Write();
            return Task.CompletedTask;
        }, this);
    }
}
