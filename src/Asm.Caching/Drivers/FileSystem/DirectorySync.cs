using System.ComponentModel;
using System.Runtime.InteropServices;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>
/// Flushes a directory's entries (a rename into it) to disk with <c>fsync</c> on the directory, which .NET offers no
/// API for. On Windows, where a directory cannot be flushed this way, it does nothing.
/// </summary>
internal static partial class DirectorySync
{
    private const int ReadOnly = 0;
    private const int CloseOnExec = 0x80000;

    /// <summary>Flushes <paramref name="directory"/>'s entries to disk.</summary>
    /// <exception cref="IOException">The directory could not be opened or flushed.</exception>
    public static void Flush(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var fd = Open(directory, ReadOnly | CloseOnExec);
        if (fd < 0)
        {
            throw Failure("opening", directory);
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw Failure("flushing", directory);
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    private static IOException Failure(string what, string directory)
    {
        var errno = Marshal.GetLastPInvokeError();
        return new IOException($"Failed {what} the directory {directory} to flush it to disk: {new Win32Exception(errno).Message}", errno);
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
