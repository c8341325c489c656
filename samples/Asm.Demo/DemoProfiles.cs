using Asm.Caching.Sessions;

namespace Asm.Demo;

/// <summary>The demo's client profiles: Asm's default (IP address and User-Agent) plus the <c>X-Demo-Client</c> header.</summary>
internal static class DemoProfiles
{
    /// <summary>
    /// A header that stands in for another device: browsers do not let a page set its own User-Agent, so the
    /// "Simulate another browser" button sends this header instead.
    /// </summary>
    public const string ClientHeader = "X-Demo-Client";

    /// <summary>The profile of a request: Asm's default profile, then the <see cref="ClientHeader"/> value.</summary>
    public static string Of(HttpContext context) =>
        $"{AsmSessionOptions.DefaultProfile(context)}|{context.Request.Headers[ClientHeader]}";

    /// <summary>A short label of a profile for the page: the client header's value (or "this browser") and a hash.</summary>
    public static string Label(string profile)
    {
        var client = profile[(profile.LastIndexOf('|') + 1)..];
        return $"{(client.Length == 0 ? "this browser" : client)} #{SessionKey.Hash(profile)[..6]}";
    }
}
