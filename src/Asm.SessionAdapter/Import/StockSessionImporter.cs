using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging;

namespace Asm.SessionAdapter.Import;

/// <summary>
/// Turns a session of ASP.NET Core's stock session store into an Asm session, once, on the first request that
/// presents its cookie (see <c>ImportStockSessions()</c>).
/// </summary>
/// <remarks>
/// <para>
/// The stock key (a GUID string) maps to an Asm key derived from it: the id locates the imported session, the
/// secret is the session's first one, stored from the start as a zombie that expires after
/// <see cref="AsmSessionOptions.ZombieLifetime"/>, while the session itself gets a fresh random secret (never one
/// derived from the stock key, which whoever holds that key could derive long after the zombie window). The import is
/// a create-if-absent of that record (<see cref="ISessionTransferDriver.ImportAsync"/>), so parallel requests with the
/// stock cookie, on any server, create one session between them and are all served it through the zombie, which
/// also sends them the Asm cookie while the stock key is the newest zombie (<see cref="SessionLoadResult.ZombieIsLatest"/>):
/// once the session is regenerated (a login), the stock cookie is a zombie as any other, never handed the current
/// key. The stock entry is removed after the record is stored; once the zombie window closes, the stock key opens
/// nothing.
/// </para>
/// <para>The record is written before the stock entry is removed, so a request that finds no stock entry looks for
/// the imported session once more before it calls the key unknown.</para>
/// </remarks>
internal sealed class StockSessionImporter(IDistributedCache cache, TimeProvider time, AsmSessionMetrics metrics, ILogger<StockSessionImporter> logger)
{
    private static readonly byte[] Domain = "Asm.ImportStockSessions\0"u8.ToArray();

    /// <summary>Whether <paramref name="key"/> has the shape of a stock session key: a GUID in its "D" format, lower case.</summary>
    public static bool IsStockKey(string key) =>
        key.Length == 36 && Guid.TryParseExact(key, "D", out var guid) && string.Equals(guid.ToString("D"), key, StringComparison.Ordinal);

    /// <summary>The Asm key a stock key opens: the id of the imported session and its first secret.</summary>
    public static SessionKey MapKey(string stockKey)
    {
        var input = new byte[Domain.Length + Encoding.ASCII.GetByteCount(stockKey)];
        Domain.CopyTo(input, 0);
        Encoding.ASCII.GetBytes(stockKey, input.AsSpan(Domain.Length));
        return SessionKey.Create(Base64Url.EncodeToString(SHA256.HashData(input))[..SessionKey.IdLength],
            Base64Url.EncodeToString(SHA256.HashData(SHA256.HashData(input)))[..SessionKey.SecretLength]);
    }

    /// <summary>
    /// Imports the stock session <paramref name="stockKey"/> into <paramref name="driver"/> under
    /// <paramref name="mapped"/>. Returns <see langword="null"/> when its payload was read (the session was stored
    /// here, or already by a parallel request), <see cref="InvalidSessionReason.Unknown"/> when there is no payload and
    /// <see cref="InvalidSessionReason.Corrupt"/> when the payload cannot be read; nothing is written then.
    /// </summary>
    public async ValueTask<InvalidSessionReason?> ImportAsync(
        ISessionDriver driver,
        AsmSessionOptions options,
        string stockKey,
        SessionKey mapped,
        string? profile,
        CancellationToken cancellationToken)
    {
        var payload = await cache.GetAsync(stockKey, cancellationToken).ConfigureAwait(false);
        if (payload is null)
        {
            return InvalidSessionReason.Unknown;
        }

        if (!StockSessionFormat.TryRead(payload, out var values))
        {
            var stockHash = SessionKey.Hash(stockKey);
            Log.StockSessionCorrupt(logger, stockHash, payload.Length);
            return InvalidSessionReason.Corrupt;
        }

        var transfer = (ISessionTransferDriver)driver;
        var now = time.GetUtcNow();
        var idleExpiresAt = now + options.IdleTimeout;
        var absoluteExpiresAt = now + options.AbsoluteTimeout;
        if (absoluteExpiresAt < idleExpiresAt)
        {
            idleExpiresAt = absoluteExpiresAt.Value;
        }

        var zombieExpiresAt = now + options.ZombieLifetime;
        var idleEnd = idleExpiresAt + options.IdleTimeout;
        var snapshot = new SessionSnapshot
        {
            SessionId = mapped.Id,
            Secret = SessionKey.New().Secret,
            CreatedAt = now,
            IdleExpiresAt = idleExpiresAt,
            AbsoluteExpiresAt = absoluteExpiresAt,
            PurgeAt = idleEnd > zombieExpiresAt ? idleEnd : zombieExpiresAt,
            Zombies = [new SessionZombie(mapped.Secret, zombieExpiresAt, profile)],
            Profiles = profile is null ? [] : [profile],
            Values = values,
        };
        if (await transfer.ImportAsync(snapshot, now, cancellationToken).ConfigureAwait(false))
        {
            metrics.Imported();
            var (stockHash, hash) = (SessionKey.Hash(stockKey), SessionKey.Hash(mapped.Id));
            Log.StockSessionImported(logger, stockHash, hash, values.Count);
        }

        await cache.RemoveAsync(stockKey, cancellationToken).ConfigureAwait(false);
        return null;
    }
}
