using System.Security.Cryptography;
using System.Runtime.InteropServices;
using Asm.Caching.Sessions;

namespace Asm.Caching.Records;

/// <summary>
/// One stored session and the rules of every session operation on it, for drivers that keep records as objects
/// or files (in-memory and filesystem), and for the Redis driver's loads without a lease (read with one <c>HGETALL</c>).
/// The Redis driver's Lua scripts follow the same rules, step for step.
/// </summary>
/// <remarks>Not thread-safe: a driver serializes the operations on one record (a lock, a file lock).</remarks>
internal sealed class SessionRecord
{
    /// <summary>Milliseconds since the Unix epoch; <see cref="long.MaxValue"/> for never.</summary>
    public const long Never = long.MaxValue;

    /// <summary>
    /// A load slides the idle expiry only when that moves it by more than this part of the idle timeout
    /// (1/<see cref="SlideFraction"/>), so that most reads of a busy session write nothing; a commit always slides.
    /// The Redis scripts are given the same threshold (<see cref="SlideThreshold"/>).
    /// </summary>
    public const int SlideFraction = 16;

    public string Secret { get; set; } = "";

    public long CreatedAt { get; set; }

    public long IdleExpiresAt { get; set; }

    public long AbsoluteExpiresAt { get; set; } = Never;

    /// <summary>The last fencing value issued; increases with every lease granted.</summary>
    public long Fence { get; set; }

    public string? LockToken { get; set; }

    public long LockExpiresAt { get; set; }

    /// <summary>The user the session is bound to (kept by a tombstone, so that its end can be reported with it).</summary>
    public string? UserId { get; set; }

    /// <summary>A destroyed record is a tombstone: it holds nothing but refuses every use until it is purged.</summary>
    public bool Destroyed { get; set; }

    /// <summary>When the record may be deleted from storage.</summary>
    public long PurgeAt { get; set; }

    /// <summary>
    /// Former secrets with the end of their window and the client profile of the request that replaced them
    /// (<see langword="null"/> when none was known), oldest first.
    /// </summary>
    public List<(string Secret, long ExpiresAt, string? Profile)> Zombies { get; } = [];

    /// <summary>Client profiles, oldest first.</summary>
    public List<string> Profiles { get; } = [];

    public Dictionary<string, byte[]> Values { get; } = new(StringComparer.Ordinal);

    public static long Ms(DateTimeOffset time) => time.ToUnixTimeMilliseconds();

    public static long Ms(TimeSpan span) => (long)span.TotalMilliseconds;

    public static DateTimeOffset Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    public static SessionRecord Tombstone(long purgeAt) => new() { Destroyed = true, PurgeAt = purgeAt };

    /// <summary>Turns this record into a tombstone: everything it stored is dropped but its user.</summary>
    public void Destroy(long purgeAt)
    {
        Destroyed = true;
        PurgeAt = purgeAt;
        Secret = "";
        LockToken = null;
        LockExpiresAt = 0;
        Zombies.Clear();
        Profiles.Clear();
        Values.Clear();
    }

    /// <summary>The least move of the idle expiry that a load writes (see <see cref="SlideFraction"/>).</summary>
    public static long SlideThreshold(TimeSpan idleTimeout) => Ms(idleTimeout) / SlideFraction;

    /// <summary>
    /// Loads the record for <paramref name="request"/>: checks the secret (current, zombie), the timeouts, and
    /// takes the lease when asked. Slides the idle expiry when the session is usable and the slide is worth a write.
    /// </summary>
    /// <param name="request">The load.</param>
    /// <param name="copyValues">
    /// Whether the result gets a dictionary of its own with copies of the value arrays (a record that outlives the
    /// call); otherwise it gets the record's own dictionary (a record read for this call alone).
    /// </param>
    public SessionLoadResult Load(SessionLoadRequest request, bool copyValues = false) => Load(request, out _, copyValues);

    /// <summary>As <see cref="Load(SessionLoadRequest, bool)"/>; <paramref name="changed"/> says whether the record must be written back.</summary>
    public SessionLoadResult Load(SessionLoadRequest request, out bool changed, bool copyValues = false)
    {
        changed = false;
        var now = Ms(request.Now);
        var status = Authenticate(request.Key.Secret, now, out var zombieProfile, out var zombieIsLatest, out var zombieExpiredAt);
        if (status is not (SessionLoadStatus.Found or SessionLoadStatus.Zombie))
        {
            return status == SessionLoadStatus.ZombieExpired
                ? new SessionLoadResult { Status = status, ZombieExpiredAt = Time(zombieExpiredAt) }
                : SessionLoadResult.Of(status);
        }

        SessionLease? lease = null;
        if (request.Lease is { } wanted)
        {
            if (LockToken is not null && LockToken != wanted.Token && LockExpiresAt > now)
            {
                return SessionLoadResult.Of(SessionLoadStatus.LockBusy);
            }

            Fence++;
            LockToken = wanted.Token;
            LockExpiresAt = now + Ms(wanted.Duration);
            lease = wanted with { Fence = Fence };
            changed = true;
        }

        var idle = Ms(request.IdleTimeout);
        if (Math.Min(now + idle, AbsoluteExpiresAt) - IdleExpiresAt > SlideThreshold(request.IdleTimeout))
        {
            Touch(now, idle);
            changed = true;
        }

        return new SessionLoadResult
        {
            Status = status,
            Values = copyValues ? CopyValues() : Values,
            CurrentSecret = status == SessionLoadStatus.Zombie ? Secret : null,
            ZombieProfile = zombieProfile,
            ZombieIsLatest = zombieIsLatest,
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt),
            Profiles = Profiles.ToArray(),
            Lease = lease,
            UserId = UserId,
        };
    }

    /// <summary>Creates the record of a new session from its first commit.</summary>
    /// <param name="request">The commit.</param>
    /// <param name="copyValues">Whether the record keeps copies of the value arrays, not the caller's (a record that outlives the call).</param>
    public static SessionRecord Create(SessionCommitRequest request, bool copyValues = false)
    {
        var now = Ms(request.Now);
        var record = new SessionRecord
        {
            Secret = request.CreateWithSecret!,
            CreatedAt = now,
            AbsoluteExpiresAt = request.AbsoluteExpiresAt is { } absolute ? Ms(absolute) : Never,
        };
        record.Apply(request, now, copyValues);
        return record;
    }

    /// <summary>Applies a commit to an existing record.</summary>
    /// <param name="request">The commit.</param>
    /// <param name="copyValues">Whether the record keeps copies of the value arrays, not the caller's (a record that outlives the call).</param>
    public SessionCommitStatus Commit(SessionCommitRequest request, bool copyValues = false)
    {
        var now = Ms(request.Now);
        if (request.CreateWithSecret is not null || !IsLive(now))
        {
            return SessionCommitStatus.NotFound;
        }

        // The token and the fence together: after a storage failover that lost a grant, an old and a new holder may
        // share a fence, never a token.
        if (request.Lease is { } lease && (lease.Fence != Fence || LockToken != lease.Token))
        {
            return SessionCommitStatus.LockLost;
        }

        Apply(request, now, copyValues);
        return SessionCommitStatus.Committed;
    }

    /// <summary>
    /// Locks the record by id alone and copies it whole, for moving it to another driver (see
    /// <see cref="ISessionTransferDriver.ExportAsync(string, SessionLease, DateTimeOffset, CancellationToken)"/>).
    /// </summary>
    public SessionExportResult Export(string sessionId, SessionLease lease, long now)
    {
        if (Destroyed)
        {
            return SessionExportResult.Of(SessionLoadStatus.Destroyed);
        }

        if (!IsLive(now))
        {
            return SessionExportResult.Of(SessionLoadStatus.Expired);
        }

        if (LockToken is not null && LockToken != lease.Token && LockExpiresAt > now)
        {
            return SessionExportResult.Of(SessionLoadStatus.LockBusy);
        }

        Fence++;
        LockToken = lease.Token;
        LockExpiresAt = now + Ms(lease.Duration);
        return new SessionExportResult
        {
            Status = SessionLoadStatus.Found,
            Lease = lease with { Fence = Fence },
            Snapshot = new SessionSnapshot
            {
                SessionId = sessionId,
                Secret = Secret,
                CreatedAt = Time(CreatedAt),
                IdleExpiresAt = Time(IdleExpiresAt),
                AbsoluteExpiresAt = AbsoluteExpiresAt == Never ? null : Time(AbsoluteExpiresAt),
                PurgeAt = Time(PurgeAt),
                Fence = Fence,
                Zombies = [.. Zombies.Select(z => new SessionZombie(z.Secret, Time(z.ExpiresAt), z.Profile))],
                Profiles = Profiles.ToArray(),
                UserId = UserId,
                Values = new Dictionary<string, byte[]>(Values, StringComparer.Ordinal),
            },
        };
    }

    /// <summary>Creates an unlocked record from a snapshot another driver exported.</summary>
    public static SessionRecord Import(SessionSnapshot snapshot)
    {
        var record = new SessionRecord
        {
            Secret = snapshot.Secret,
            CreatedAt = Ms(snapshot.CreatedAt),
            IdleExpiresAt = Ms(snapshot.IdleExpiresAt),
            AbsoluteExpiresAt = snapshot.AbsoluteExpiresAt is { } absolute ? Ms(absolute) : Never,
            PurgeAt = Ms(snapshot.PurgeAt),
            Fence = snapshot.Fence,
            UserId = snapshot.UserId,
        };
        record.Zombies.AddRange(snapshot.Zombies.Select(z => (z.Secret, Ms(z.ExpiresAt), z.Profile)));
        record.Profiles.AddRange(snapshot.Profiles);
        foreach (var (name, value) in snapshot.Values)
        {
            record.Values[name] = value;
        }

        return record;
    }

    /// <summary>Extends a lease that is still held.</summary>
    public bool Renew(SessionLease lease, long now)
    {
        if (!IsLive(now) || LockToken != lease.Token || Fence != lease.Fence)
        {
            return false;
        }

        LockExpiresAt = now + Ms(lease.Duration);
        return true;
    }

    /// <summary>
    /// Releases a lease if it is still held; returns whether it was. The token alone names the holder (it is random
    /// per lease), so a caller whose load was cancelled before it saw the grant, and its fence, can still release.
    /// </summary>
    public bool Release(SessionLease lease)
    {
        if (LockToken != lease.Token)
        {
            return false;
        }

        LockToken = null;
        LockExpiresAt = 0;
        return true;
    }

    /// <summary>Replaces the secret; the old one becomes a zombie.</summary>
    public SessionCommitStatus Regenerate(SessionRegenerateRequest request)
    {
        var now = Ms(request.Now);
        if (Authenticate(request.Key.Secret, now, out _, out _, out _) is not (SessionLoadStatus.Found or SessionLoadStatus.Zombie))
        {
            return SessionCommitStatus.NotFound;
        }

        // One entry per secret: a secret that was already a zombie (it was current before) gets the new window and
        // becomes the newest, as the Lua scripts do with the hash field named after it.
        var replaced = Secret;
        Zombies.RemoveAll(z => z.Secret == replaced);
        Zombies.Add((Secret, Ms(request.ZombieExpiresAt), request.Profile));
        if (Zombies.Count > request.MaxZombies)
        {
            Zombies.RemoveRange(0, Zombies.Count - request.MaxZombies);
        }

        Secret = request.NewSecret;
        PurgeAt = Math.Max(PurgeAt, Ms(request.ZombieExpiresAt));
        return SessionCommitStatus.Committed;
    }

    /// <summary>Regenerates the secret and binds the record to <paramref name="userId"/> in the same step.</summary>
    public SessionBindResult Bind(SessionRegenerateRequest request, string userId)
    {
        var previous = UserId;
        var status = Regenerate(request);
        if (status == SessionCommitStatus.Committed)
        {
            UserId = userId;
        }

        return new SessionBindResult(status, previous);
    }

    /// <summary>
    /// Ends the session for every clock (its idle expiry set to the Unix epoch) if it is not destroyed and its idle
    /// expiry is still <paramref name="idleExpiresAt"/>; see <see cref="ISessionTrackingDriver.ExpireSessionAsync"/>.
    /// </summary>
    public bool Expire(long idleExpiresAt)
    {
        if (Destroyed || IdleExpiresAt != idleExpiresAt)
        {
            return false;
        }

        IdleExpiresAt = 0;
        return true;
    }

    /// <summary>What the record tells about its session, without touching it.</summary>
    public StoredSessionInfo Info(string sessionId) => new(
        sessionId,
        UserId,
        Destroyed,
        DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt),
        DateTimeOffset.FromUnixTimeMilliseconds(IdleExpiresAt),
        AbsoluteExpiresAt == Never ? null : DateTimeOffset.FromUnixTimeMilliseconds(AbsoluteExpiresAt),
        [.. Profiles]);

    private SessionLoadStatus Authenticate(string secret, long now, out string? zombieProfile, out bool zombieIsLatest, out long zombieExpiredAt)
    {
        zombieProfile = null;
        zombieIsLatest = false;
        zombieExpiredAt = 0;
        if (Destroyed)
        {
            return SessionLoadStatus.Destroyed;
        }

        SessionLoadStatus status;
        if (FixedTimeEquals(Secret, secret))
        {
            status = SessionLoadStatus.Found;
        }
        else
        {
            var zombie = IndexOfZombie(secret);
            if (zombie < 0)
            {
                return SessionLoadStatus.Unknown;
            }

            status = Zombies[zombie].ExpiresAt > now ? SessionLoadStatus.Zombie : SessionLoadStatus.ZombieExpired;
            zombieProfile = status == SessionLoadStatus.Zombie ? Zombies[zombie].Profile : null;
            zombieIsLatest = status == SessionLoadStatus.Zombie && zombie == Zombies.Count - 1;
            zombieExpiredAt = status == SessionLoadStatus.ZombieExpired ? Zombies[zombie].ExpiresAt : 0;
        }

        return IsLive(now) || status == SessionLoadStatus.ZombieExpired ? status : SessionLoadStatus.Expired;
    }

    private bool IsLive(long now) => !Destroyed && IdleExpiresAt > now && AbsoluteExpiresAt > now;

    private void Apply(SessionCommitRequest request, long now, bool copyValues)
    {
        if (request.Clear)
        {
            Values.Clear();
        }

        foreach (var (name, value) in request.Changes)
        {
            if (value is null)
            {
                Values.Remove(name);
            }
            else
            {
                Values[name] = copyValues ? [.. value] : value;
            }
        }

        foreach (var profile in request.AddProfiles)
        {
            Profiles.Remove(profile);
            Profiles.Add(profile);
        }

        if (Profiles.Count > request.MaxProfiles)
        {
            Profiles.RemoveRange(0, Profiles.Count - request.MaxProfiles);
        }

        if (request.ReleaseLock && request.Lease is { } lease)
        {
            Release(lease);
        }

        Touch(now, Ms(request.IdleTimeout));
    }

    /// <summary>
    /// Slides the idle expiry. The record is kept for one more idle period after it expires, so that a late
    /// cookie is told it expired rather than that it is unknown.
    /// </summary>
    private void Touch(long now, long idleTimeout)
    {
        IdleExpiresAt = Math.Min(now + idleTimeout, AbsoluteExpiresAt);
        var zombieEnd = Zombies.Count == 0 ? 0 : Zombies.Max(z => z.ExpiresAt);
        PurgeAt = Math.Max(IdleExpiresAt + idleTimeout, zombieEnd);
    }

    private int IndexOfZombie(string secret)
    {
        for (var i = 0; i < Zombies.Count; i++)
        {
            if (FixedTimeEquals(Zombies[i].Secret, secret))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>The values for a result that must not share the record's: a dictionary of its own, with copies of the arrays.</summary>
    private Dictionary<string, byte[]> CopyValues()
    {
        var copies = new Dictionary<string, byte[]>(Values.Count, StringComparer.Ordinal);
        foreach (var (name, value) in Values)
        {
            copies[name] = [.. value];
        }

        return copies;
    }

    /// <summary>Compares two secrets in constant time for a given length (the UTF-16 code units, so no copy is made).</summary>
    private static bool FixedTimeEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes(a.AsSpan()), MemoryMarshal.AsBytes(b.AsSpan()));
}
