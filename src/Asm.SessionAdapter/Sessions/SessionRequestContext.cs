using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter.Sessions;

/// <summary>
/// Tells <see cref="AsmSessionStore"/> the request it makes a session for: <see cref="Microsoft.AspNetCore.Session.ISessionStore.Create"/>
/// is not given the <see cref="HttpContext"/>. A middleware that a startup filter puts first in the app's pipeline
/// keeps it in an async-local for the request's flow, where the session middleware asks the store.
/// </summary>
/// <remarks>
/// This is what <see cref="IHttpContextAccessor"/> would do, without its cost: with an accessor registered, ASP.NET
/// Core stops reusing a connection's <see cref="HttpContext"/> for its next request (the accessor's users may keep it),
/// and each request then allocates a new context, request, response and connection info (about 470 bytes on Kestrel,
/// docs/benchmarks.md). Nothing but the store reads the context kept here. It is kept until the request ends, not let go
/// of by the final commit: an error page (<c>UseExceptionHandler</c>, <c>UseStatusCodePagesWithReExecute</c>) runs the
/// session middleware again after it. An app that registers an accessor itself has given up the reuse already: the
/// store then asks its accessor, which also serves a session pipeline the app builds by hand.
/// </remarks>
internal static class SessionRequestContext
{
    private static readonly AsyncLocal<Holder?> Current = new();

    /// <summary>The request in whose flow this runs, or <see langword="null"/> outside the filter's middleware and after its request.</summary>
    public static HttpContext? Request => Current.Value?.Context;

    /// <summary>
    /// Keeps <paramref name="context"/> for its request's flow and lets go of it when the request ends: a task the
    /// request started copies the holder, and Kestrel reuses the context object for the connection's next request.
    /// </summary>
    private static Task Run(HttpContext context, RequestDelegate next)
    {
        var holder = new Holder { Context = context };
        Current.Value = holder;
        Task pending;
        try
        {
            pending = next(context);
        }
        catch
        {
            holder.Context = null;
            throw;
        }

        if (pending.IsCompleted)
        {
            holder.Context = null;
            return pending;
        }

        return EndWhenDone(pending, holder);
    }

    private static async Task EndWhenDone(Task pending, Holder holder)
    {
        try
        {
            await pending.ConfigureAwait(false);
        }
        finally
        {
            holder.Context = null;
        }
    }

    private sealed class Holder
    {
        public HttpContext? Context;
    }

    /// <summary>Puts the middleware first in the app's pipeline, before anything that could use the session.</summary>
    internal sealed class StartupFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(static (context, nextMiddleware) => Run(context, nextMiddleware));
            next(app);
        };
    }
}
