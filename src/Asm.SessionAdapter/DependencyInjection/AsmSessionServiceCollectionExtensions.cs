using Asm.SessionAdapter;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Sessions;
using Asm.SessionAdapter.Users;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Asm sessions.</summary>
public static class AsmSessionServiceCollectionExtensions
{
    /// <summary>
    /// Registers Asm as the application's session store, in place of <c>AddSession()</c>. Keep <c>app.UseSession()</c>
    /// and <c>HttpContext.Session</c> as they are. Sessions are kept in memory unless the returned builder chooses
    /// another driver.
    /// </summary>
    public static IAsmSessionBuilder AddAsmSession(this IServiceCollection services, Action<AsmSessionOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<AsmSessionOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AsmSessionOptions>, AsmSessionOptionsValidator>());

        // The stock middleware reads the cookie, the timeouts and the key length from SessionOptions. After every
        // Configure: an AddSession(o => o.Cookie...) left in the app after this call would otherwise replace Asm's cookie
        // (its name, the __Host- prefix and the Secure policy UseHostPrefix asks for) without a word. What the app set
        // there that Asm does not use is logged, so that a Configure<SessionOptions> kept from the stock session is not
        // dropped without a word either.
        services.AddOptions<SessionOptions>().PostConfigure<IOptions<AsmSessionOptions>, ILoggerFactory>((session, asm, logs) =>
        {
            var written = new SessionOptions();
            CopyTo(asm.Value, written);
            var unused = NotUsed(session, written);
            CopyTo(asm.Value, session);
            if (unused.Count > 0)
            {
                Log.SessionOptionsNotUsed(logs.CreateLogger<AsmSessionStore>(), string.Join(", ", unused));
            }
        });

        services.AddAsmStorageCore();
        services.AddDataProtection();
        // Not AddHttpContextAccessor(): with an accessor registered, ASP.NET Core allocates every request a new HttpContext.
        // First of the startup filters, whose middlewares run in the order they were registered: before any that an app
        // registered earlier, which may run the session middleware itself.
        if (!services.Any(d => d.ImplementationType == typeof(SessionRequestContext.StartupFilter)))
        {
            services.Insert(0, ServiceDescriptor.Transient<IStartupFilter, SessionRequestContext.StartupFilter>());
        }
        services.AddMetrics();
        services.TryAddSingleton<AsmSessionMetrics>();
        services.TryAddSingleton<AsmSessionServices>();
        // Replace, not TryAdd: an AddSession() made earlier would otherwise keep the stock store, and every IAsmSession
        // call would fail. An AddSession() made later only TryAdds its store, so Asm's stays either way.
        services.Replace(ServiceDescriptor.Transient<ISessionStore, AsmSessionStore>());
        services.TryAddSingleton<SessionLifecycle>();
        services.TryAddSingleton<IAsmSessionManager, AsmSessionManager>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, SessionEndSweeper>());
        return new AsmSessionBuilder(services);
    }

    /// <summary>
    /// The options <paramref name="app"/> sets to something other than the stock session's default and other than
    /// what Asm uses (<paramref name="written"/>).
    /// </summary>
    private static List<string> NotUsed(SessionOptions app, SessionOptions written)
    {
        var stock = new SessionOptions();
        List<string> unused = [];
        void Check<T>(Func<SessionOptions, T> option, string name)
        {
            var set = option(app);
            if (!EqualityComparer<T>.Default.Equals(set, option(stock)) && !EqualityComparer<T>.Default.Equals(set, option(written)))
            {
                unused.Add(name);
            }
        }

        Check(o => o.IdleTimeout, nameof(SessionOptions.IdleTimeout));
        Check(o => o.IOTimeout, nameof(SessionOptions.IOTimeout));
        Check(o => o.Cookie.Name, "Cookie.Name");
        Check(o => o.Cookie.Path, "Cookie.Path");
        Check(o => o.Cookie.Domain, "Cookie.Domain");
        Check(o => o.Cookie.SameSite, "Cookie.SameSite");
        Check(o => o.Cookie.HttpOnly, "Cookie.HttpOnly");
        Check(o => o.Cookie.SecurePolicy, "Cookie.SecurePolicy");
        Check(o => o.Cookie.IsEssential, "Cookie.IsEssential");
        Check(o => o.Cookie.MaxAge, "Cookie.MaxAge");
        Check(o => string.Join("; ", o.Cookie.Extensions), "Cookie.Extensions");
        return unused;
    }

    private static void CopyTo(AsmSessionOptions asm, SessionOptions session)
    {
        var cookie = asm.Cookie;
        session.Cookie = new CookieBuilder
        {
            Name = asm.CookieName,
            Path = asm.UseHostPrefix ? "/" : cookie.Path,
            Domain = asm.UseHostPrefix ? null : cookie.Domain,
            HttpOnly = cookie.HttpOnly,
            SameSite = cookie.SameSite,
            SecurePolicy = asm.UseHostPrefix ? CookieSecurePolicy.Always : cookie.SecurePolicy,
            IsEssential = cookie.IsEssential,
            MaxAge = cookie.MaxAge,
        };
        foreach (var extension in cookie.Extensions)
        {
            session.Cookie.Extensions.Add(extension);
        }

        session.IdleTimeout = asm.IdleTimeout;
        session.IOTimeout = asm.IOTimeout;
    }
}
