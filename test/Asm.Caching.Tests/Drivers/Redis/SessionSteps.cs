using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>The session operations the Redis tests repeat, with the requests filled in from a clock.</summary>
internal static class SessionSteps
{
    public static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);

    public static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(30);

    public static async Task<SessionKey> CreateAsync(ISessionDriver driver, TimeProvider clock, Dictionary<string, byte[]?>? values = null)
    {
        var key = SessionKey.New();
        var status = await driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                CreateWithSecret = key.Secret,
                Now = clock.GetUtcNow(),
                IdleTimeout = Idle,
                Changes = values ?? new Dictionary<string, byte[]?> { ["a"] = [1] },
            },
            CancellationToken.None);
        Assert.Equal(SessionCommitStatus.Committed, status);
        return key;
    }

    public static Task<SessionLoadResult> LoadAsync(
        ISessionDriver driver, TimeProvider clock, SessionKey key, SessionLease? lease = null, CancellationToken cancellationToken = default) =>
        driver.LoadAsync(new SessionLoadRequest { Key = key, Now = clock.GetUtcNow(), IdleTimeout = Idle, Lease = lease }, cancellationToken).AsTask();

    public static Task<SessionCommitStatus> CommitAsync(
        ISessionDriver driver,
        TimeProvider clock,
        SessionKey key,
        Dictionary<string, byte[]?> changes,
        SessionLease? lease = null,
        bool releaseLock = false,
        IReadOnlyList<string>? profiles = null) =>
        driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                Now = clock.GetUtcNow(),
                IdleTimeout = Idle,
                Lease = lease,
                ReleaseLock = releaseLock,
                Changes = changes,
                AddProfiles = profiles ?? [],
            },
            CancellationToken.None).AsTask();

    public static Task<SessionCommitStatus> RegenerateAsync(ISessionDriver driver, TimeProvider clock, SessionKey presented, SessionKey renewed) =>
        driver.RegenerateAsync(
            new SessionRegenerateRequest
            {
                Key = presented,
                NewSecret = renewed.Secret,
                Now = clock.GetUtcNow(),
                ZombieExpiresAt = clock.GetUtcNow() + TimeSpan.FromMinutes(1),
            },
            CancellationToken.None).AsTask();

    /// <summary>Creates <paramref name="count"/> sessions with <paramref name="writer"/>; returns their ids in ordinal order.</summary>
    public static async Task<List<string>> CreateManyAsync(ISessionDriver writer, TimeProvider clock, int count)
    {
        var ids = new List<string>();
        for (var i = 0; i < count; i++)
        {
            ids.Add((await CreateAsync(writer, clock)).Id);
        }

        ids.Sort(StringComparer.Ordinal);
        return ids;
    }

    /// <summary>Every session id <paramref name="driver"/> lists, in ordinal order.</summary>
    public static async Task<List<string>> ListAsync(ISessionListingDriver driver)
    {
        List<string> ids = [];
        await foreach (var id in driver.ListSessionIdsAsync(CancellationToken.None))
        {
            ids.Add(id);
        }

        ids.Sort(StringComparer.Ordinal);
        return ids;
    }

    /// <summary>
    /// Whether <paramref name="driver"/> serves sessions again and lists exactly <paramref name="ids"/> (in ordinal
    /// order), each once; false while an operation fails with the driver's clear exception (a failover under way).
    /// </summary>
    public static async Task<bool> ServesAndListsExactlyAsync(RedisDriver driver, TimeProvider clock, List<string> ids)
    {
        try
        {
            return (await LoadAsync(driver, clock, SessionKey.New())).Status == SessionLoadStatus.Unknown
                && ids.SequenceEqual(await ListAsync(driver));
        }
        catch (RedisDriverException)
        {
            return false;
        }
    }
}
