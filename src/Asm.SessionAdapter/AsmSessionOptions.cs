using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>
/// Everything Asm sessions can be told, each default set here and stated in its docs. Validated at start-up.
/// </summary>
public sealed class AsmSessionOptions
{
    /// <summary>The default cookie name: the stock session's, so that swapping providers keeps the same cookie slot.</summary>
    public const string DefaultCookieName = ".AspNetCore.Session";

    /// <summary>The longest user id <see cref="IAsmSession.BindUserAsync"/> accepts, in UTF-16 characters.</summary>
    public const int MaxUserIdLength = 16 * 1024;

    /// <summary>How long a session lives without being used. Every access slides it. At most 36,500 days.</summary>
    /// <value>The default value is 20 minutes, as for the stock session.</value>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(20);

    /// <summary>
    /// How long a session lives from its creation however active it is; <see langword="null"/> turns the limit off
    /// (a longer span than 36,500 days is refused at start-up: use <see langword="null"/>).
    /// </summary>
    /// <value>The default value is 8 hours.</value>
    public TimeSpan? AbsoluteTimeout { get; set; } = TimeSpan.FromHours(8);

    /// <summary>
    /// How long one storage operation may take before it is cancelled; at most 1 day. <see cref="Timeout.InfiniteTimeSpan"/>
    /// turns the timeout off, as for the stock session (a lock renewal is still bounded by a third of <see cref="LockLease"/>).
    /// </summary>
    /// <value>The default value is 1 minute, as for the stock session.</value>
    public TimeSpan IOTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The session cookie. Defaults: name <see cref="DefaultCookieName"/>, <c>HttpOnly</c>, <c>SameSite=Lax</c>,
    /// <c>SecurePolicy=SameAsRequest</c>, <c>Path=/</c>, not essential. The cookie carries the key protected by
    /// ASP.NET Core Data Protection, as the stock session's does. <c>Expiration</c> is refused at start-up, as the
    /// stock session's cookie refuses it; <c>MaxAge</c> keeps the cookie after the browser closes.
    /// </summary>
    public CookieBuilder Cookie { get; set; } = new()
    {
        Name = DefaultCookieName,
        Path = "/",
        HttpOnly = true,
        SameSite = SameSiteMode.Lax,
        SecurePolicy = CookieSecurePolicy.SameAsRequest,
        IsEssential = false,
    };

    /// <summary>
    /// Whether the cookie name gets the <c>__Host-</c> prefix, which browsers accept only on a secure, host-only
    /// cookie with <c>Path=/</c> (so <c>SecurePolicy</c> becomes <c>Always</c>).
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool UseHostPrefix { get; set; }

    /// <summary>How endpoints without <see cref="SessionLockAttribute"/> lock their session.</summary>
    /// <value>The default value is <see cref="SessionLockMode.Exclusive"/>.</value>
    public SessionLockMode DefaultLockMode { get; set; } = SessionLockMode.Exclusive;

    /// <summary>How long a lock lease lasts; it is renewed in the background every third of it while the request runs.
    /// A holder that dies blocks the session for at most this long. At least 1 second, at most 1 day.</summary>
    /// <value>The default value is 30 seconds.</value>
    public TimeSpan LockLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a request waits for its session lock.</summary>
    /// <value>The default value is 10 seconds.</value>
    public TimeSpan LockWaitTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>What a request does when the lock wait times out.</summary>
    /// <value>The default value is <see cref="SessionAdapter.LockWaitFailure.Throw"/>.</value>
    public LockWaitFailure LockWaitFailure { get; set; } = LockWaitFailure.Throw;

    /// <summary>
    /// How long a key replaced by <see cref="IAsmSession.RegenerateIdAsync"/> keeps working, for the same client
    /// profile only; <see cref="TimeSpan.Zero"/> turns zombie keys off (a replaced key is refused at once). At most
    /// 36,500 days.
    /// </summary>
    /// <value>The default value is 30 seconds.</value>
    public TimeSpan ZombieLifetime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The most bytes of values one session may hold (the sum of the lengths of its values and of their names in UTF-8,
    /// as this request sees them). A <c>Set</c> or commit that would pass it throws <see cref="InvalidOperationException"/>
    /// and writes nothing.
    /// </summary>
    /// <value>The default value is 4 MiB.</value>
    public long MaxSessionSize { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// Describes the client of a request; a session used from a profile it has not seen raises
    /// <see cref="AsmSessionEvents.OnProfileChanged"/>. Returning <see langword="null"/> or an empty string (or setting
    /// this to <see langword="null"/>) skips the check.
    /// </summary>
    /// <value>The default is the client IP address and the User-Agent header.</value>
    public Func<HttpContext, string?>? ProfileProvider { get; set; } = DefaultProfile;

    /// <summary>How many client profiles a session remembers (the most recent are kept).</summary>
    /// <value>The default value is 8.</value>
    public int MaxProfiles { get; set; } = 8;

    /// <summary>
    /// How many sessions one user may have; when <see cref="IAsmSession.BindUserAsync"/> would exceed it, the user's
    /// least recently used sessions are ended (reason <see cref="SessionEndReason.Evicted"/>). <see langword="null"/> for no cap.
    /// </summary>
    /// <value>The default value is <see langword="null"/> (no cap).</value>
    public int? MaxSessionsPerUser { get; set; }

    /// <summary>
    /// Whether every stored value (and profile) is encrypted and authenticated with ASP.NET Core Data Protection,
    /// whatever the driver.
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool EncryptAtRest { get; set; }

    /// <summary>The session event callbacks.</summary>
    public AsmSessionEvents Events { get; set; } = new();

    /// <summary>The client profile used when <see cref="ProfileProvider"/> is not replaced.</summary>
    public static string DefaultProfile(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return $"{context.Connection.RemoteIpAddress}|{context.Request.Headers.UserAgent}";
    }

    /// <summary>
    /// Writes <see cref="DefaultProfile"/>'s profile into <paramref name="destination"/> without making a string;
    /// <see langword="false"/> when it does not fit.
    /// </summary>
    internal static bool TryWriteDefaultProfile(HttpContext context, Span<char> destination, out int written) =>
        destination.TryWrite($"{context.Connection.RemoteIpAddress}|{context.Request.Headers.UserAgent}", out written);

    /// <summary>The name of the cookie as sent, with the <c>__Host-</c> prefix when <see cref="UseHostPrefix"/> is set.</summary>
    internal string CookieName => UseHostPrefix ? "__Host-" + Cookie.Name : Cookie.Name!;
}
