using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using Asm.Caching.Records;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>Reads and writes the file of one session record.</summary>
/// <remarks>
/// <para>
/// Format version 1. Integers are little-endian; times are <see cref="long"/> milliseconds since the Unix epoch
/// (<see cref="SessionRecord.Never"/> for never); a string is an <see cref="int"/> count of UTF-16 code units followed
/// by the code units, so that any .NET string (a value name with a lone surrogate) round-trips exactly.
/// </para>
/// <code>
/// byte     format version (1)
/// int64    PurgeAt            first, so that the sweeper reads only these 9 bytes
/// byte     flags              bit 0: destroyed (a tombstone); bit 1: locked; bit 2: bound to a user; bit 3: zombie
///                             profiles; other bits zero
/// string   Secret
/// int64    CreatedAt
/// int64    IdleExpiresAt
/// int64    AbsoluteExpiresAt
/// int64    Fence
/// string   LockToken          only when locked
/// int64    LockExpiresAt      only when locked
/// string   UserId             only when bound (the raw user id; a tombstone keeps it)
/// int32    zombie count       then per zombie: string Secret, int64 ExpiresAt (oldest first), and with bit 3 of
///                             the flags a byte (1 when a profile follows, else 0) and string Profile: the client
///                             profile of the request that replaced the secret
/// int32    profile count      then per profile: string (oldest first)
/// int32    value count        then per value: string Name, int32 length, the value's bytes
/// </code>
/// <para>
/// Nothing follows the last value. A file with another version, a count or length that overruns the file, a time
/// out of <see cref="DateTimeOffset"/>'s range, a duplicate value name, unknown flags or trailing bytes is corrupt: <see cref="TryDeserialize"/> refuses it.
/// </para>
/// </remarks>
internal static class SessionFileFormat
{
    /// <summary>The version this code writes and the only one it reads.</summary>
    public const byte Version = 1;

    /// <summary>The bytes <see cref="TryReadPurgeAt"/> needs: the version and PurgeAt.</summary>
    public const int HeaderLength = 1 + sizeof(long);

    private const byte DestroyedFlag = 1;
    private const byte LockedFlag = 2;
    private const byte BoundFlag = 4;
    private const byte ZombieProfilesFlag = 8;

    public static byte[] Serialize(SessionRecord record)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        WriteByte(buffer, Version);
        WriteInt64(buffer, record.PurgeAt);
        var locked = record.LockToken is not null;
        var bound = record.UserId is not null;
        var zombieProfiles = record.Zombies.Exists(z => z.Profile is not null);
        WriteByte(buffer, (byte)((record.Destroyed ? DestroyedFlag : 0) | (locked ? LockedFlag : 0) | (bound ? BoundFlag : 0)
            | (zombieProfiles ? ZombieProfilesFlag : 0)));
        WriteString(buffer, record.Secret);
        WriteInt64(buffer, record.CreatedAt);
        WriteInt64(buffer, record.IdleExpiresAt);
        WriteInt64(buffer, record.AbsoluteExpiresAt);
        WriteInt64(buffer, record.Fence);
        if (locked)
        {
            WriteString(buffer, record.LockToken!);
            WriteInt64(buffer, record.LockExpiresAt);
        }

        if (bound)
        {
            WriteString(buffer, record.UserId!);
        }

        WriteInt32(buffer, record.Zombies.Count);
        foreach (var (secret, expiresAt, profile) in record.Zombies)
        {
            WriteString(buffer, secret);
            WriteInt64(buffer, expiresAt);
            if (zombieProfiles)
            {
                WriteByte(buffer, profile is null ? (byte)0 : (byte)1);
                if (profile is not null)
                {
                    WriteString(buffer, profile);
                }
            }
        }

        WriteInt32(buffer, record.Profiles.Count);
        foreach (var profile in record.Profiles)
        {
            WriteString(buffer, profile);
        }

        WriteInt32(buffer, record.Values.Count);
        foreach (var (name, value) in record.Values)
        {
            WriteString(buffer, name);
            WriteInt32(buffer, value.Length);
            buffer.Write(value);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads a whole session file; returns <see langword="false"/> when it is not a valid version 1 file.</summary>
    public static bool TryDeserialize(ReadOnlySpan<byte> data, [NotNullWhen(true)] out SessionRecord? record)
    {
        record = null;
        var reader = new SpanReader(data);
        if (!reader.TryReadByte(out var version) || version != Version
            || !reader.TryReadInt64(out var purgeAt)
            || !reader.TryReadByte(out var flags) || (flags & ~(DestroyedFlag | LockedFlag | BoundFlag | ZombieProfilesFlag)) != 0
            || !reader.TryReadString(out var secret)
            || !reader.TryReadTime(out var createdAt)
            || !reader.TryReadTime(out var idleExpiresAt)
            || !reader.TryReadTime(out var absoluteExpiresAt)
            || !reader.TryReadInt64(out var fence))
        {
            return false;
        }

        var result = new SessionRecord
        {
            PurgeAt = purgeAt,
            Destroyed = (flags & DestroyedFlag) != 0,
            Secret = secret,
            CreatedAt = createdAt,
            IdleExpiresAt = idleExpiresAt,
            AbsoluteExpiresAt = absoluteExpiresAt,
            Fence = fence,
        };

        if ((flags & LockedFlag) != 0)
        {
            if (!reader.TryReadString(out var token) || !reader.TryReadTime(out var lockExpiresAt))
            {
                return false;
            }

            result.LockToken = token;
            result.LockExpiresAt = lockExpiresAt;
        }

        if ((flags & BoundFlag) != 0)
        {
            if (!reader.TryReadString(out var userId))
            {
                return false;
            }

            result.UserId = userId;
        }

        if (!reader.TryReadCount(out var zombies))
        {
            return false;
        }

        for (var i = 0; i < zombies; i++)
        {
            if (!reader.TryReadString(out var zombie) || !reader.TryReadTime(out var expiresAt))
            {
                return false;
            }

            string? profile = null;
            if ((flags & ZombieProfilesFlag) != 0)
            {
                if (!reader.TryReadByte(out var hasProfile) || hasProfile > 1 || (hasProfile == 1 && !reader.TryReadString(out profile)))
                {
                    return false;
                }
            }

            result.Zombies.Add((zombie, expiresAt, profile));
        }

        if (!reader.TryReadCount(out var profiles))
        {
            return false;
        }

        for (var i = 0; i < profiles; i++)
        {
            if (!reader.TryReadString(out var profile))
            {
                return false;
            }

            result.Profiles.Add(profile);
        }

        if (!reader.TryReadCount(out var values))
        {
            return false;
        }

        for (var i = 0; i < values; i++)
        {
            if (!reader.TryReadString(out var name) || !reader.TryReadBytes(out var value) || !result.Values.TryAdd(name, value))
            {
                return false;
            }
        }

        if (!reader.IsAtEnd)
        {
            return false;
        }

        record = result;
        return true;
    }

    /// <summary>Reads PurgeAt from the first <see cref="HeaderLength"/> bytes of a session file.</summary>
    public static bool TryReadPurgeAt(ReadOnlySpan<byte> header, out long purgeAt)
    {
        var reader = new SpanReader(header);
        purgeAt = 0;
        return reader.TryReadByte(out var version) && version == Version && reader.TryReadInt64(out purgeAt);
    }

    private static void WriteByte(ArrayBufferWriter<byte> buffer, byte value)
    {
        buffer.GetSpan(1)[0] = value;
        buffer.Advance(1);
    }

    private static void WriteInt32(ArrayBufferWriter<byte> buffer, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(buffer.GetSpan(sizeof(int)), value);
        buffer.Advance(sizeof(int));
    }

    private static void WriteInt64(ArrayBufferWriter<byte> buffer, long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(buffer.GetSpan(sizeof(long)), value);
        buffer.Advance(sizeof(long));
    }

    private static void WriteString(ArrayBufferWriter<byte> buffer, string value)
    {
        WriteInt32(buffer, value.Length);
        var span = buffer.GetSpan(value.Length * sizeof(char));
        for (var i = 0; i < value.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(span[(i * sizeof(char))..], value[i]);
        }

        buffer.Advance(value.Length * sizeof(char));
    }

    /// <summary>Reads the fields of a session file, refusing anything that overruns the data.</summary>
    private ref struct SpanReader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _rest = data;

        public readonly bool IsAtEnd => _rest.IsEmpty;

        public bool TryReadByte(out byte value)
        {
            value = 0;
            if (_rest.IsEmpty)
            {
                return false;
            }

            value = _rest[0];
            _rest = _rest[1..];
            return true;
        }

        public bool TryReadInt32(out int value)
        {
            if (!BinaryPrimitives.TryReadInt32LittleEndian(_rest, out value))
            {
                return false;
            }

            _rest = _rest[sizeof(int)..];
            return true;
        }

        public bool TryReadInt64(out long value)
        {
            if (!BinaryPrimitives.TryReadInt64LittleEndian(_rest, out value))
            {
                return false;
            }

            _rest = _rest[sizeof(long)..];
            return true;
        }

        /// <summary>
        /// Reads a count of entries. Every entry takes at least four bytes, so a count larger than a quarter of what is
        /// left overruns the data (and would otherwise make a garbage file allocate a huge list).
        /// </summary>
        /// <summary>A time: <see cref="SessionRecord.Never"/> or milliseconds a <see cref="DateTimeOffset"/> can hold.</summary>
        public bool TryReadTime(out long value) =>
            TryReadInt64(out value)
            && (value == SessionRecord.Never
                || value is >= -62_135_596_800_000 and <= 253_402_300_799_999);

        public bool TryReadCount(out int count) =>
            TryReadInt32(out count) && count >= 0 && count <= _rest.Length / sizeof(int);

        public bool TryReadString([NotNullWhen(true)] out string? value)
        {
            value = null;
            if (!TryReadInt32(out var length) || length < 0 || length > _rest.Length / sizeof(char))
            {
                return false;
            }

            var bytes = _rest[..(length * sizeof(char))];
            value = string.Create(length, bytes, static (chars, source) =>
            {
                for (var i = 0; i < chars.Length; i++)
                {
                    chars[i] = (char)BinaryPrimitives.ReadUInt16LittleEndian(source[(i * sizeof(char))..]);
                }
            });
            _rest = _rest[(length * sizeof(char))..];
            return true;
        }

        public bool TryReadBytes([NotNullWhen(true)] out byte[]? value)
        {
            value = null;
            if (!TryReadInt32(out var length) || length < 0 || length > _rest.Length)
            {
                return false;
            }

            value = _rest[..length].ToArray();
            _rest = _rest[length..];
            return true;
        }
    }
}
