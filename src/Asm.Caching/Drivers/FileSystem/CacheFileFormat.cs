using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>Reads and writes the file of one cache entry.</summary>
/// <remarks>
/// <para>
/// Format version 1. Integers are little-endian; times are <see cref="DateTimeOffset.UtcTicks"/> and durations
/// <see cref="TimeSpan.Ticks"/>, with <see cref="NotSet"/> for a missing one.
/// </para>
/// <code>
/// byte     format version (1)
/// int64    ExpiresAt            first, so that the sweeper reads only these 9 bytes
/// int64    AbsoluteExpiresAt
/// int64    Sliding
/// int32    value length
/// bytes    the value
/// </code>
/// <para>A file with another version, a negative or overrunning length or trailing bytes is corrupt.</para>
/// </remarks>
internal static class CacheFileFormat
{
    /// <summary>The version this code writes and the only one it reads.</summary>
    public const byte Version = 1;

    /// <summary>The bytes <see cref="TryReadExpiresAt"/> needs: the version and ExpiresAt.</summary>
    public const int HeaderLength = 1 + sizeof(long);

    private const long NotSet = -1;
    private const int ValueOffset = 1 + (3 * sizeof(long)) + sizeof(int);

    public static byte[] Serialize(CacheFileEntry entry)
    {
        var data = new byte[ValueOffset + entry.Value.Length];
        data[0] = Version;
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(1), entry.ExpiresAt?.UtcTicks ?? NotSet);
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(9), entry.AbsoluteExpiresAt?.UtcTicks ?? NotSet);
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(17), entry.Sliding?.Ticks ?? NotSet);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(25), entry.Value.Length);
        entry.Value.CopyTo(data, ValueOffset);
        return data;
    }

    /// <summary>Reads a whole cache file; returns <see langword="false"/> when it is not a valid version 1 file.</summary>
    public static bool TryDeserialize(ReadOnlySpan<byte> data, [NotNullWhen(true)] out CacheFileEntry? entry)
    {
        entry = null;
        if (data.Length < ValueOffset || data[0] != Version
            || !TryReadTime(data[1..], out var expiresAt)
            || !TryReadTime(data[9..], out var absoluteExpiresAt))
        {
            return false;
        }

        var sliding = BinaryPrimitives.ReadInt64LittleEndian(data[17..]);
        var length = BinaryPrimitives.ReadInt32LittleEndian(data[25..]);
        if ((sliding != NotSet && sliding <= 0) || length != data.Length - ValueOffset)
        {
            return false;
        }

        entry = new CacheFileEntry(
            expiresAt,
            absoluteExpiresAt,
            sliding == NotSet ? null : TimeSpan.FromTicks(sliding),
            data[ValueOffset..].ToArray());
        return true;
    }

    /// <summary>Reads ExpiresAt from the first <see cref="HeaderLength"/> bytes of a cache file.</summary>
    public static bool TryReadExpiresAt(ReadOnlySpan<byte> header, out DateTimeOffset? expiresAt)
    {
        expiresAt = null;
        return header.Length >= HeaderLength && header[0] == Version && TryReadTime(header[1..], out expiresAt);
    }

    private static bool TryReadTime(ReadOnlySpan<byte> data, out DateTimeOffset? time)
    {
        time = null;
        var ticks = BinaryPrimitives.ReadInt64LittleEndian(data);
        if (ticks == NotSet)
        {
            return true;
        }

        if (ticks < DateTimeOffset.MinValue.UtcTicks || ticks > DateTimeOffset.MaxValue.UtcTicks)
        {
            return false;
        }

        time = new DateTimeOffset(ticks, TimeSpan.Zero);
        return true;
    }
}
