using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Asm.Caching.Sessions;
using Microsoft.AspNetCore.DataProtection;

namespace Asm.SessionAdapter.Encryption;

/// <summary>
/// Encrypts and authenticates every value and profile a session stores, around any driver, with ASP.NET Core
/// Data Protection under a purpose of Asm's own and the session id.
/// </summary>
/// <remarks>
/// Stored value: <c>Protect([1: format version][4: name byte count, big-endian][name UTF-8][value])</c>.
/// The name inside the ciphertext binds a value to its name, and the session id in the purpose binds it to its
/// session, so that values moved between names or sessions fail to open. A value that fails to open makes the
/// whole load <see cref="SessionLoadStatus.Corrupt"/>. Profiles are stored as
/// <c>Protect([1: format version][profile UTF-8])</c>, base64, and are never compared by the driver; so is the profile
/// stored with each zombie secret.
/// </remarks>
internal sealed class EncryptingSessionDriver(ISessionDriver inner, IDataProtectionProvider dataProtection) : ISessionDriver, ISessionTransferDriver
{
    private const string Purpose = "Asm.SessionAdapter.EncryptAtRest";
    private const byte FormatVersion = 1;

    private readonly IDataProtector _protector = dataProtection.CreateProtector(Purpose);

    public async ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken)
    {
        var result = await inner.LoadAsync(request, cancellationToken).ConfigureAwait(false);
        if (result.Status is not (SessionLoadStatus.Found or SessionLoadStatus.Zombie))
        {
            return result;
        }

        var protector = For(request.Key.Id);
        try
        {
            var values = new Dictionary<string, byte[]>(result.Values.Count, StringComparer.Ordinal);
            foreach (var (name, stored) in result.Values)
            {
                values[name] = OpenValue(protector, name, stored);
            }

            var profiles = result.Profiles.Select(p => OpenProfile(protector, p)).ToList();
            return result with
            {
                Values = values,
                ZombieProfile = result.ZombieProfile is { } zombieProfile ? OpenProfile(protector, zombieProfile) : null,
                Profiles = profiles,
            };
        }
        catch (Exception ex) when (ex is CryptographicException or FormatException)
        {
            if (result.Lease is { } lease)
            {
                await inner.ReleaseLockAsync(request.Key.Id, lease, cancellationToken).ConfigureAwait(false);
            }

            return SessionLoadResult.Of(SessionLoadStatus.Corrupt);
        }
    }

    public ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken)
    {
        var protector = For(request.SessionId);
        var changes = new Dictionary<string, byte[]?>(request.Changes.Count, StringComparer.Ordinal);
        foreach (var (name, value) in request.Changes)
        {
            changes[name] = value is null ? null : SealValue(protector, name, value);
        }

        var sealedRequest = request with
        {
            Changes = changes,
            AddProfiles = request.AddProfiles.Select(p => SealProfile(protector, p)).ToList(),
        };
        return inner.CommitAsync(sealedRequest, cancellationToken);
    }

    public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        inner.RenewLockAsync(sessionId, lease, now, cancellationToken);

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) =>
        inner.ReleaseLockAsync(sessionId, lease, cancellationToken);

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, ILockReleaseObserver? observer, CancellationToken cancellationToken) =>
        inner.ReleaseLockAsync(sessionId, lease, observer, cancellationToken);

    public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) =>
        inner.RegenerateAsync(Seal(request), cancellationToken);

    /// <summary>The regeneration as stored: its profile sealed (for binds too, which regenerate through the driver's tracking).</summary>
    public SessionRegenerateRequest Seal(SessionRegenerateRequest request) =>
        request.Profile is { } profile ? request with { Profile = SealProfile(For(request.Key.Id), profile) } : request;

    public ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) =>
        inner.DestroyAsync(sessionId, now, tombstoneExpiresAt, cancellationToken);

    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
        inner.WaitForReleaseAsync(sessionId, maxWait, cancellationToken);

    public ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        ExportAsync(sessionId, lease, now, waitIfBusy: true, cancellationToken);

    public async ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, bool waitIfBusy, CancellationToken cancellationToken)
    {
        var result = await Transfer.ExportAsync(sessionId, lease, now, waitIfBusy, cancellationToken).ConfigureAwait(false);
        if (result.Snapshot is not { } snapshot)
        {
            return result;
        }

        var protector = For(sessionId);
        try
        {
            return new SessionExportResult
            {
                Status = result.Status,
                Lease = result.Lease,
                Snapshot = snapshot with
                {
                    Values = snapshot.Values.ToDictionary(v => v.Key, v => OpenValue(protector, v.Key, v.Value), StringComparer.Ordinal),
                    Profiles = [.. snapshot.Profiles.Select(p => OpenProfile(protector, p))],
                    Zombies = [.. snapshot.Zombies.Select(z => z with { Profile = z.Profile is { } p ? OpenProfile(protector, p) : null })],
                },
            };
        }
        catch (Exception ex) when (ex is CryptographicException or FormatException)
        {
            await inner.ReleaseLockAsync(sessionId, result.Lease!, cancellationToken).ConfigureAwait(false);
            return SessionExportResult.Of(SessionLoadStatus.Corrupt);
        }
    }

    public ValueTask<bool> ImportAsync(SessionSnapshot snapshot, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var protector = For(snapshot.SessionId);
        return Transfer.ImportAsync(snapshot with
        {
            Values = snapshot.Values.ToDictionary(v => v.Key, v => SealValue(protector, v.Key, v.Value), StringComparer.Ordinal),
            Profiles = [.. snapshot.Profiles.Select(p => SealProfile(protector, p))],
            Zombies = [.. snapshot.Zombies.Select(z => z with { Profile = z.Profile is { } p ? SealProfile(protector, p) : null })],
        }, now, cancellationToken);
    }

    private ISessionTransferDriver Transfer => inner as ISessionTransferDriver ?? throw new InvalidOperationException(
        $"The driver {inner.GetType().Name} does not implement {nameof(ISessionTransferDriver)}.");

    /// <summary>Opens the stored profiles of a session (for <see cref="IAsmSessionManager"/>); none when they do not open.</summary>
    public IReadOnlyList<string> OpenProfiles(string sessionId, IReadOnlyList<string> stored)
    {
        var protector = For(sessionId);
        try
        {
            return stored.Select(p => OpenProfile(protector, p)).ToList();
        }
        catch (Exception ex) when (ex is CryptographicException or FormatException)
        {
            return [];
        }
    }

    private IDataProtector For(string sessionId) => _protector.CreateProtector(sessionId);

    private static byte[] SealValue(IDataProtector protector, string name, byte[] value)
    {
        var nameLength = Encoding.UTF8.GetByteCount(name);
        var plain = new byte[1 + 4 + nameLength + value.Length];
        plain[0] = FormatVersion;
        BinaryPrimitives.WriteInt32BigEndian(plain.AsSpan(1), nameLength);
        Encoding.UTF8.GetBytes(name, plain.AsSpan(5));
        value.CopyTo(plain.AsSpan(5 + nameLength));
        return protector.Protect(plain);
    }

    private static byte[] OpenValue(IDataProtector protector, string name, byte[] stored)
    {
        var plain = protector.Unprotect(stored).AsSpan();
        if (plain.Length < 5 || plain[0] != FormatVersion)
        {
            throw new FormatException("Unknown encrypted value format.");
        }

        var nameLength = BinaryPrimitives.ReadInt32BigEndian(plain[1..]);
        if (nameLength < 0 || nameLength > plain.Length - 5 || !Encoding.UTF8.GetString(plain.Slice(5, nameLength)).Equals(name, StringComparison.Ordinal))
        {
            throw new FormatException("The encrypted value belongs to another name.");
        }

        return plain[(5 + nameLength)..].ToArray();
    }

    private static string SealProfile(IDataProtector protector, string profile)
    {
        var plain = new byte[1 + Encoding.UTF8.GetByteCount(profile)];
        plain[0] = FormatVersion;
        Encoding.UTF8.GetBytes(profile, plain.AsSpan(1));
        return Convert.ToBase64String(protector.Protect(plain));
    }

    private static string OpenProfile(IDataProtector protector, string stored)
    {
        var plain = protector.Unprotect(Convert.FromBase64String(stored));
        if (plain.Length < 1 || plain[0] != FormatVersion)
        {
            throw new FormatException("Unknown encrypted profile format.");
        }

        return Encoding.UTF8.GetString(plain.AsSpan(1));
    }
}
