using System.Text;
using Asm.Caching.Caching;
using Asm.Caching.Sessions;

namespace Asm.Caching.Tests.Drivers;

/// <summary>
/// The records saved under <c>Samples/</c>: what the drivers of layout version 1 stored after these operations, kept
/// so that a change of layout can never orphan stored sessions unnoticed.
/// </summary>
internal static class SampleRecords
{
    public const string LiveId = "sampleSession1";
    public const string DestroyedId = "sampleSession2";
    public const string OldSecret = "oldSecret0000000000000";
    public const string CurrentSecret = "currentSecret000000000";
    public const string LeaseToken = "sample-lease-token";
    public const string CacheKey = "sample-cache-key";

    public static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    public static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);
    public static readonly DateTimeOffset ZombieExpiresAt = T0.AddSeconds(62);
    public static readonly DateTimeOffset AbsoluteExpiresAt = T0.AddDays(1);
    public static readonly byte[] CacheValue = [1, 2, 3];
    public static readonly CacheEntryExpiration CacheExpiration = new(T0, T0.AddHours(1), TimeSpan.FromMinutes(5));

    /// <summary>The values of the live sample: text, an empty value, a non-ASCII name with arbitrary bytes.</summary>
    public static readonly Dictionary<string, byte[]?> Values = new(StringComparer.Ordinal)
    {
        ["name"] = Encoding.UTF8.GetBytes("Ada"),
        ["empty"] = [],
        ["ключ"] = [0, 255, 1],
    };

    public static SessionKey Current => SessionKey.Create(LiveId, CurrentSecret);

    public static SessionKey Old => SessionKey.Create(LiveId, OldSecret);

    /// <summary>
    /// The live sample: created with profile-a, profile-b added, regenerated (old secret a zombie until T0+62s) and
    /// locked by <see cref="LeaseToken"/> (fence 1, until T0+33s). The tombstone sample: destroyed at T0+5s until T0+1h.
    /// </summary>
    public static async Task WriteAsync(ISessionDriver driver)
    {
        var none = CancellationToken.None;
        Assert.Equal(SessionCommitStatus.Committed, await driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = LiveId, CreateWithSecret = OldSecret, Now = T0, IdleTimeout = Idle,
                AbsoluteExpiresAt = AbsoluteExpiresAt, Changes = Values, AddProfiles = ["profile-a"],
            },
            none));
        Assert.Equal(SessionCommitStatus.Committed, await driver.CommitAsync(
            new SessionCommitRequest { SessionId = LiveId, Now = T0.AddSeconds(1), IdleTimeout = Idle, AddProfiles = ["profile-b"] }, none));
        Assert.Equal(SessionCommitStatus.Committed, await driver.RegenerateAsync(
            new SessionRegenerateRequest { Key = Old, NewSecret = CurrentSecret, Now = T0.AddSeconds(2), ZombieExpiresAt = ZombieExpiresAt }, none));
        var locked = await driver.LoadAsync(
            new SessionLoadRequest { Key = Current, Now = T0.AddSeconds(3), IdleTimeout = Idle, Lease = new SessionLease(LeaseToken, TimeSpan.FromSeconds(30)) },
            none);
        Assert.Equal(1, locked.Lease?.Fence);
        await driver.DestroyAsync(DestroyedId, T0.AddSeconds(5), T0.AddHours(1), none);
    }
}
