using System.Text;
using Asm.Caching.Sessions;

namespace Asm.Benchmarks;

/// <summary>What every benchmark's session holds: the values the load-test app seeds (about 250 bytes).</summary>
internal static class SeedData
{
    public const string UserAgent = "asm-bench";

    /// <summary>The client profile Asm records for a loopback request with <see cref="UserAgent"/>.</summary>
    public const string Profile = "127.0.0.1|" + UserAgent;

    public static Dictionary<string, byte[]?> Values() => new(StringComparer.Ordinal)
    {
        ["user"] = Encoding.UTF8.GetBytes("bench-user-0042"),
        ["roles"] = Encoding.UTF8.GetBytes("reader,editor"),
        ["counter"] = [0, 0, 0, 0],
        ["cart"] = [.. Enumerable.Range(0, 200).Select(i => (byte)i)],
    };

    public static SessionCommitRequest CreateRequest(SessionKey key, DateTimeOffset now, TimeSpan idleTimeout) => new()
    {
        SessionId = key.Id,
        Now = now,
        IdleTimeout = idleTimeout,
        CreateWithSecret = key.Secret,
        AbsoluteExpiresAt = now + TimeSpan.FromHours(8),
        Changes = Values(),
        AddProfiles = [Profile],
    };
}
