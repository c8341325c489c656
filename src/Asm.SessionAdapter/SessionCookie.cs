using System.Security.Cryptography;
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

    /// <summary>The Base64 digits of a cookie value: what sets the length it decodes to (padding and white space do not count).</summary>
    public static int Base64Digits(string? value)
    {
        var digits = 0;
        foreach (var c in value ?? "")
        {
            digits += c is '=' || char.IsWhiteSpace(c) ? 0 : 1;
        }

        return digits;
    }

    /// <summary>
    /// The key the request's cookie carries, read as the stock middleware reads it; <see langword="null"/> when there is
    /// no cookie or it does not unprotect.
    /// </summary>
    public string? Read(HttpContext context)
    {
        var value = context.Request.Cookies[Name];
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        try
        {
            var padded = value.PadRight(value.Length + ((4 - (value.Length % 4)) % 4), '=');
            return Encoding.UTF8.GetString(_protector.Unprotect(Convert.FromBase64String(padded)));
        }
        catch (Exception ex) when (ex is FormatException or CryptographicException)
        {
            return null;
        }
    }
}
