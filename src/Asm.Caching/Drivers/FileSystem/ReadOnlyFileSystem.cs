namespace Asm.Caching.Drivers.FileSystem;

/// <summary>Tells a failure of a file system mounted read-only (<c>EROFS</c>) from any other.</summary>
internal static class ReadOnlyFileSystem
{
    /// <summary><c>EROFS</c>, the same on Linux, macOS and the BSDs; .NET reports it as the exception's <see cref="Exception.HResult"/>.</summary>
    private const int ReadOnlyErrno = 30;

    /// <summary>
    /// Whether <paramref name="exception"/>, or an exception it wraps (a lock file that could not be opened), is a write
    /// refused because the file system is read-only.
    /// </summary>
    public static bool IsCauseOf(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is IOException && e.HResult == ReadOnlyErrno && !OperatingSystem.IsWindows())
            {
                return true;
            }
        }

        return false;
    }
}
