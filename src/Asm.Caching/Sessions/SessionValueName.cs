using System.Text;

namespace Asm.Caching.Sessions;

/// <summary>
/// The one rule for session value names on every driver: well-formed UTF-16 (no lone surrogate, which Redis could not
/// store apart from U+FFFD) of at most <see cref="MaxBytes"/> UTF-8 bytes.
/// </summary>
internal static class SessionValueName
{
    /// <summary>The most UTF-8 bytes a name may have.</summary>
    public const int MaxBytes = ushort.MaxValue;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Throws <see cref="ArgumentException"/> when <paramref name="name"/> breaks the rule.</summary>
    public static void Validate(string name, string paramName)
    {
        var bytes = ByteCount(name);
        if (bytes < 0)
        {
            throw new ArgumentException(
                "A session value name must be well-formed UTF-16: it has a lone surrogate, which not every driver can store.", paramName);
        }

        if (bytes > MaxBytes)
        {
            throw new ArgumentOutOfRangeException(paramName, $"A session value name may not exceed {MaxBytes} UTF-8 bytes.");
        }
    }

    /// <summary>Whether <paramref name="name"/> keeps the rule: a name that does not can have no value.</summary>
    public static bool IsValid(string name) => ByteCount(name) is >= 0 and <= MaxBytes;

    /// <summary>Checks every name a commit would write.</summary>
    public static void ValidateAll(SessionCommitRequest request)
    {
        foreach (var name in request.Changes.Keys)
        {
            Validate(name, nameof(request));
        }
    }

    /// <summary>The UTF-8 bytes of <paramref name="name"/>, or -1 when it has a lone surrogate.</summary>
    private static int ByteCount(string name)
    {
        try
        {
            return StrictUtf8.GetByteCount(name);
        }
        catch (EncoderFallbackException)
        {
            return -1;
        }
    }
}
