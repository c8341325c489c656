namespace Asm.Testing.Faults;

/// <summary>
/// A file made immutable (<c>chattr +i</c>) on cue: it can be read, but not written, renamed over or deleted, while
/// the rest of its directory works, as a file a disk fault or an operator has locked. It needs root (or
/// CAP_LINUX_IMMUTABLE) and a file system with the attribute (ext4, tmpfs). Made mutable again on disposal.
/// </summary>
public sealed class ImmutableFile : IDisposable
{
    private readonly string _path;

    private ImmutableFile(string path) => _path = path;

    /// <summary>Makes <paramref name="path"/> immutable.</summary>
    /// <returns>The immutable file; dispose it to make it mutable again.</returns>
    public static ImmutableFile Set(string path)
    {
        try
        {
            FaultCommand.Run("chattr", "+i", path);
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidOperationException($"Making a file immutable needs root (or CAP_LINUX_IMMUTABLE): {ex.Message}", ex);
        }

        return new ImmutableFile(path);
    }

    public void Dispose()
    {
        if (File.Exists(_path))
        {
            FaultCommand.Run("chattr", "-i", _path);
        }
    }
}
