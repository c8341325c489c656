using System.Buffers.Text;
using System.Security.Cryptography;

namespace Asm.Caching.Sessions;

/// <summary>
/// A session key as it travels in the cookie: a stable session id followed by a rotating secret.
/// </summary>
/// <remarks>
/// The key is 36 URL-safe base64 characters, the length ASP.NET Core's session middleware accepts:
/// 14 characters (84 random bits) of id, which locates the record, and 22 characters (132 random bits) of secret,
/// which proves the right to use it. Both come from <see cref="RandomNumberGenerator"/>. The id alone grants nothing:
/// a record answers only to its current secret and, for a short window, to the zombie secrets it had before.
/// </remarks>
public readonly record struct SessionKey
{
    /// <summary>Characters of the id part.</summary>
    public const int IdLength = 14;

    /// <summary>Characters of the secret part.</summary>
    public const int SecretLength = 22;

    /// <summary>Characters of a whole key.</summary>
    public const int Length = IdLength + SecretLength;

    private SessionKey(string value)
    {
        // Cut once: a request asks a key for its id many times (every storage call, the lock queue, the lease).
        Value = value;
        Id = value[..IdLength];
        Secret = value[IdLength..];
    }

    /// <summary>The whole key, as stored in the cookie.</summary>
    public string Value { get; }

    /// <summary>The stable session id.</summary>
    public string Id { get; }

    /// <summary>The secret that proves the right to use the session.</summary>
    public string Secret { get; }

    /// <summary>Whether <paramref name="other"/> is the same key (its id and secret follow from it).</summary>
    /// <param name="other">The key to compare with.</param>
    /// <returns><see langword="true"/> when both keys have the same <see cref="Value"/>.</returns>
    public bool Equals(SessionKey other) => string.Equals(Value, other.Value, StringComparison.Ordinal);

    /// <inheritdoc/>
    public override int GetHashCode() => Value is null ? 0 : StringComparer.Ordinal.GetHashCode(Value);

    /// <summary>Creates a key with a new id and a new secret.</summary>
    public static SessionKey New() => new(Random(Length));

    /// <summary>Creates a key with the same id and a new secret.</summary>
    public SessionKey WithNewSecret() => new(Id + Random(SecretLength));

    /// <summary>Creates the key of session <paramref name="id"/> with secret <paramref name="secret"/>.</summary>
    public static SessionKey Create(string id, string secret)
    {
        if (!TryParse(id + secret, out var key))
        {
            throw new ArgumentException("The id and secret do not form a valid session key.", nameof(secret));
        }

        return key;
    }

    /// <summary>Parses a key that came from a client; any other shape is refused.</summary>
    public static bool TryParse(string? value, out SessionKey key)
    {
        key = default;
        if (value is null || value.Length != Length)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!IsUrlSafeBase64(c))
            {
                return false;
            }
        }

        key = new SessionKey(value);
        return true;
    }

    /// <summary>A short, non-reversible label of a key or id for logs and screens (never log a raw key).</summary>
    public static string Hash(string value)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(value), hash);
        return Convert.ToHexStringLower(hash[..4]);
    }

    /// <inheritdoc/>
    public override string ToString() => Hash(Value);

    private static string Random(int characters)
    {
        // Base64 of n bytes is 4 * n / 3 characters; draw enough bytes and cut to length.
        Span<byte> bytes = stackalloc byte[(characters * 3 / 4) + 3];
        RandomNumberGenerator.Fill(bytes);
        return Base64Url.EncodeToString(bytes)[..characters];
    }

    private static bool IsUrlSafeBase64(char c) =>
        c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_';
}
