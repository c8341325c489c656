using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Asm.Caching.Records;
using StackExchange.Redis;

namespace Asm.Caching.Drivers.Redis;

/// <summary>
/// Reads a session hash (the layout <see cref="RedisScripts"/> documents) into a <see cref="SessionRecord"/>, field
/// for field as the scripts' <c>read</c> does: a field that does not parse, a field the layout does not have, or a
/// missing one makes the record unreadable. A load without a lease then runs the record's own rules on one
/// <c>HGETALL</c> and needs a script only when it must write.
/// </summary>
internal static class RedisRecordReader
{
    /// <summary>The most digits (and sign) an integer field may have.</summary>
    private const int MaxIntegerLength = 16;

    private static readonly long EarliestTime = DateTimeOffset.MinValue.ToUnixTimeMilliseconds();
    private static readonly long LatestTime = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();

    /// <summary>
    /// Whether <paramref name="ms"/> is a time a <see cref="DateTimeOffset"/> holds. A load that finds a session hands
    /// out its creation time as one, so such a load of a record whose <c>c</c> is not (16 digits reach past the year
    /// 9999) is Corrupt, read with the script as without it, never an exception.
    /// </summary>
    public static bool IsTime(long ms) => ms >= EarliestTime && ms <= LatestTime;

    /// <summary>Reads <paramref name="fields"/>, which must not be empty; false when the record cannot be read.</summary>
    public static bool TryRead(HashEntry[] fields, [NotNullWhen(true)] out SessionRecord? record)
    {
        record = null;
        var candidate = new SessionRecord();
        List<(string Secret, long Seq, long ExpiresAt, string? Profile)>? zombies = null;
        List<(string Profile, long Seq)>? profiles = null;
        bool format = false, hasCreated = false, hasIdle = false, hasPurge = false, hasLockExpiry = false;
        foreach (var field in fields)
        {
            var name = (string?)field.Name ?? "";
            if (name.Length >= 2 && name[1] == ':')
            {
                var rest = name[2..];
                switch (name[0])
                {
                    case 'v':
                        candidate.Values[rest] = (byte[]?)field.Value ?? [];
                        break;
                    case 'p':
                        if (!TryInteger((string?)field.Value, out var seq))
                        {
                            return false;
                        }

                        (profiles ??= []).Add((rest, seq));
                        break;
                    case 'z':
                        if (!TryZombie((string?)field.Value, out var zombieSeq, out var expiresAt, out var profile))
                        {
                            return false;
                        }

                        (zombies ??= []).Add((rest, zombieSeq, expiresAt, profile));
                        break;
                    default:
                        return false;
                }

                continue;
            }

            var value = (string?)field.Value ?? "";
            switch (name)
            {
                case "s":
                    candidate.Secret = value;
                    break;
                case "lt":
                    candidate.LockToken = value;
                    break;
                case "u":
                    candidate.UserId = value.Length > 0 ? value : null;
                    break;
                case "fmt" or "x":
                    if (value != "1")
                    {
                        return false;
                    }

                    format |= name == "fmt";
                    candidate.Destroyed |= name == "x";
                    break;
                case "c" or "ie" or "pa" or "f" or "ae" or "n" or "lx":
                    if (!TryInteger(value, out var number))
                    {
                        return false;
                    }

                    switch (name)
                    {
                        case "c":
                            (candidate.CreatedAt, hasCreated) = (number, true);
                            break;
                        case "ie":
                            (candidate.IdleExpiresAt, hasIdle) = (number, true);
                            break;
                        case "pa":
                            (candidate.PurgeAt, hasPurge) = (number, true);
                            break;
                        case "f":
                            candidate.Fence = number;
                            break;
                        case "ae":
                            candidate.AbsoluteExpiresAt = number;
                            break;
                        case "lx":
                            (candidate.LockExpiresAt, hasLockExpiry) = (number, true);
                            break;
                    }

                    break;
                default:
                    return false;
            }
        }

        if (!format)
        {
            return false;
        }

        if (!candidate.Destroyed
            && (candidate.Secret.Length == 0 || !hasCreated || !hasIdle || !hasPurge || (candidate.LockToken is null) != !hasLockExpiry))
        {
            return false;
        }

        // Zombies and profiles oldest first, by the sequence number each was stored with.
        if (zombies is not null)
        {
            zombies.Sort(static (a, b) => a.Seq.CompareTo(b.Seq));
            foreach (var (secret, _, expiresAt, profile) in zombies)
            {
                candidate.Zombies.Add((secret, expiresAt, profile));
            }
        }

        if (profiles is not null)
        {
            profiles.Sort(static (a, b) => a.Seq.CompareTo(b.Seq));
            foreach (var (profile, _) in profiles)
            {
                candidate.Profiles.Add(profile);
            }
        }

        record = candidate;
        return true;
    }

    /// <summary>An integer field: an optional minus and at least one digit, at most 16 characters in all.</summary>
    private static bool TryInteger(ReadOnlySpan<char> text, out long value)
    {
        value = 0;
        var digits = text.StartsWith('-') ? text[1..] : text;
        return text.Length <= MaxIntegerLength && digits.Length > 0 && !digits.ContainsAnyExceptInRange('0', '9')
            && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>A zombie: <c>seq:expiry</c> or <c>seq:expiry:profile</c>, the sequence without a sign.</summary>
    private static bool TryZombie(string? text, out long seq, out long expiresAt, out string? profile)
    {
        seq = expiresAt = 0;
        profile = null;
        var span = text.AsSpan();
        var first = span.IndexOf(':');
        if (first <= 0 || span[0] == '-' || !TryInteger(span[..first], out seq))
        {
            return false;
        }

        var rest = span[(first + 1)..];
        var second = rest.IndexOf(':');
        if (second < 0)
        {
            return TryInteger(rest, out expiresAt);
        }

        profile = rest[(second + 1)..].ToString();
        return profile.Length > 0 && TryInteger(rest[..second], out expiresAt);
    }
}
