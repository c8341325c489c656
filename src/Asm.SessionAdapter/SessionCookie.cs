using System.Text;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>
/// Reads and writes the session cookie exactly as ASP.NET Core's session middleware does (the same Data Protection
/// purpose and encoding), so that the stock <c>app.UseSession()</c> reads what Asm writes.
/// </summary>
internal sealed class SessionCookie(CookieBuilder builder, IDataProtectionProvider dataProtection)
{
    /// <summary>The purpose the stock middleware protects its cookie with (the name of its class).</summary>
    private const string MiddlewarePurpose = "SessionMiddleware";

    private readonly IDataProtector _protector = dataProtection.CreateProtector(MiddlewarePurpose);

    public string Name => builder.Name!;

    public void Append(HttpContext context, string key)
    {
        var value = Convert.ToBase64String(_protector.Protect(Encoding.UTF8.GetBytes(key))).TrimEnd('=');
        context.Response.Cookies.Append(Name, value, builder.Build(context));
        var headers = context.Response.Headers;
        headers.CacheControl = "no-cache,no-store";
        headers.Pragma = "no-cache";
        headers.Expires = "-1";
    }

    public void Delete(HttpContext context) => context.Response.Cookies.Delete(Name, builder.Build(context));
}
