using System.Buffers.Binary;
using System.Text;

namespace Asm.SessionAdapter.Import;

/// <summary>
/// Reads what ASP.NET Core's stock session (<c>Microsoft.AspNetCore.Session.DistributedSession</c>) stores in the
/// <c>IDistributedCache</c>: serialization revision 2, the only one it has written from ASP.NET Core 1.0 to 10.0.
/// </summary>
/// <remarks>
/// <code>
/// byte        serialization revision (2)
/// 3 bytes     entry count, big-endian (0 to 16,777,215)
/// 16 bytes    the stock session's own id (not needed: Asm gives the session its own)
/// per entry:  2 bytes name length, big-endian; the name, UTF-8; 4 bytes value length, big-endian; the value
/// </code>
/// Stricter than the stock reader: another revision, a count or a length that runs past the end, a negative length,
/// a name twice or bytes after the last entry make the payload corrupt. The stock reader replaces an unknown revision
/// with an empty session and ignores trailing bytes; the stock writer never produces either.
/// </remarks>
internal static class StockSessionFormat
{
    /// <summary>The revision the stock session writes, and the only one read.</summary>
    public const byte Revision = 2;

    private const int HeaderLength = 1 + 3 + 16;

    public static bool TryRead(ReadOnlySpan<byte> payload, out Dictionary<string, byte[]> values)
    {
        values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        if (payload.Length < HeaderLength || payload[0] != Revision)
        {
            return false;
        }

        var count = (payload[1] << 16) | (payload[2] << 8) | payload[3];
        var rest = payload[HeaderLength..];

        // Each entry takes at least 6 bytes: a count the payload cannot hold is refused before anything is allocated.
        if (count > rest.Length / 6)
        {
            return false;
        }

        for (var i = 0; i < count; i++)
        {
            if (rest.Length < 2)
            {
                return false;
            }

            int nameLength = BinaryPrimitives.ReadUInt16BigEndian(rest);
            rest = rest[2..];
            if (rest.Length < nameLength + 4)
            {
                return false;
            }

            var name = Encoding.UTF8.GetString(rest[..nameLength]);
            rest = rest[nameLength..];
            var valueLength = BinaryPrimitives.ReadInt32BigEndian(rest);
            rest = rest[4..];
            if (valueLength < 0 || valueLength > rest.Length || !values.TryAdd(name, rest[..valueLength].ToArray()))
            {
                return false;
            }

            rest = rest[valueLength..];
        }

        return rest.IsEmpty;
    }
}
