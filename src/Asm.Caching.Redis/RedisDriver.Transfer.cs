using Asm.Caching.Records;
using Asm.Caching.Sessions;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using StackExchange.Redis;

namespace Asm.Caching.Drivers.Redis;

/// <summary>Hands whole session records over to another driver and takes them in, each in one script.</summary>
internal sealed partial class RedisDriver : ISessionTransferDriver, ISessionListingDriver
{
    public ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        ExportAsync(sessionId, lease, now, waitIfBusy: true, cancellationToken);

    public async ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, bool waitIfBusy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(lease);
        var result = await _connection.EvaluateAsync(
            RedisScripts.Export,
            SessionKeyOf(sessionId),
            WaiterKeyOf(sessionId),
            [SessionRecord.Ms(now), lease.Token, SessionRecord.Ms(lease.Duration), LeaseClock(now), _party, waitIfBusy ? "1" : ""],
            "session export",
            cancellationToken).ConfigureAwait(false);
        var reply = (RedisResult[]?)result ?? [];
        var status = reply.Length == 0 ? SessionLoadStatus.Corrupt : ToLoadStatus((long)reply[0]);
        if (status != SessionLoadStatus.Found)
        {
            return SessionExportResult.Of(status);
        }

        var fence = (long)reply[1];
        var absolute = (string?)reply[5];
        var user = (string?)reply[7];
        var next = 9;
        var zombies = new SessionZombie[(int)(long)reply[8]];
        for (var i = 0; i < zombies.Length; i++, next += 3)
        {
            var profile = (string?)reply[next + 2];
            zombies[i] = new SessionZombie((string?)reply[next] ?? "", SessionRecord.Time((long)reply[next + 1]), string.IsNullOrEmpty(profile) ? null : profile);
        }

        var profiles = new string[(int)(long)reply[next++]];
        for (var i = 0; i < profiles.Length; i++)
        {
            profiles[i] = (string?)reply[next++] ?? "";
        }

        var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        for (; next + 1 < reply.Length; next += 2)
        {
            values[(string?)reply[next] ?? ""] = (byte[]?)reply[next + 1] ?? [];
        }

        return new SessionExportResult
        {
            Status = status,
            Lease = lease with { Fence = fence },
            Snapshot = new SessionSnapshot
            {
                SessionId = sessionId,
                Secret = (string?)reply[2] ?? "",
                CreatedAt = SessionRecord.Time((long)reply[3]),
                IdleExpiresAt = SessionRecord.Time((long)reply[4]),
                AbsoluteExpiresAt = string.IsNullOrEmpty(absolute) ? null : SessionRecord.Time(long.Parse(absolute, System.Globalization.CultureInfo.InvariantCulture)),
                PurgeAt = SessionRecord.Time((long)reply[6]),
                Fence = fence,
                Zombies = zombies,
                Profiles = profiles,
                UserId = string.IsNullOrEmpty(user) ? null : user,
                Values = values,
            },
        };
    }

    public async IAsyncEnumerable<string> ListSessionIdsAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Keys are <prefix>s:{<id>}; the prefix is matched literally (glob characters in InstanceName escaped).
        var pattern = GlobSpecial().Replace(_sessionPrefix, @"\$0") + "*}";
        await foreach (var key in _connection.ScanAsync(pattern, "session listing", cancellationToken).ConfigureAwait(false))
        {
            if (key.Length > _sessionPrefix.Length + 1 && key.StartsWith(_sessionPrefix, StringComparison.Ordinal) && key.EndsWith('}'))
            {
                yield return key[_sessionPrefix.Length..^1];
            }
        }
    }

    public async ValueTask<bool> ImportAsync(SessionSnapshot snapshot, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var args = new List<RedisValue>(11 + (snapshot.Zombies.Count * 3) + snapshot.Profiles.Count + (snapshot.Values.Count * 2))
        {
            SessionRecord.Ms(now),
            snapshot.Secret,
            SessionRecord.Ms(snapshot.CreatedAt),
            SessionRecord.Ms(snapshot.IdleExpiresAt),
            snapshot.AbsoluteExpiresAt is { } absolute ? SessionRecord.Ms(absolute) : "",
            SessionRecord.Ms(snapshot.PurgeAt),
            snapshot.Fence,
            snapshot.UserId ?? "",
            snapshot.Zombies.Count,
        };
        foreach (var zombie in snapshot.Zombies)
        {
            args.Add(zombie.Secret);
            args.Add(SessionRecord.Ms(zombie.ExpiresAt));
            args.Add(zombie.Profile ?? "");
        }

        args.Add(snapshot.Profiles.Count);
        foreach (var profile in snapshot.Profiles)
        {
            args.Add(profile);
        }

        foreach (var (name, value) in snapshot.Values)
        {
            args.Add(name);
            args.Add(value);
        }

        var result = await _connection.EvaluateAsync(
            RedisScripts.Import, SessionKeyOf(snapshot.SessionId), [.. args], "session import", cancellationToken).ConfigureAwait(false);
        return (long)result == 1;
    }

    [GeneratedRegex(@"[\\*?\[\]]")]
    private static partial Regex GlobSpecial();
}
