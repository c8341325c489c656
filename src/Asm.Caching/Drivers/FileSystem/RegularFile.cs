using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>
/// Opens a file of the store for reading only when it is a regular file. Something else planted at its path (by the
/// app's own user, or a misconfiguration) must not stall or fail a request: a FIFO blocks an ordinary open until a
/// writer comes, a directory fails it with "access denied". On Linux the path is opened without blocking
/// (<c>O_NONBLOCK</c>, which a regular file ignores) and its type read from the open descriptor (<c>statx</c>), so
/// nothing swapped in between can fool it; elsewhere a directory is told apart by its attributes.
/// </summary>
internal static partial class RegularFile
{
    private const int ReadOnly = 0;
    private const int NonBlocking = 0x800;
    private const int CloseOnExec = 0x80000;

    /// <summary>Lets <c>statx</c> look at the descriptor itself (<c>AT_EMPTY_PATH</c>).</summary>
    private const int EmptyPath = 0x1000;

    /// <summary>Asks for the file type alone (<c>STATX_TYPE</c>).</summary>
    private const uint TypeField = 0x1;

    /// <summary>Where <c>stx_mode</c> lies in <c>struct statx</c>, the same on every architecture.</summary>
    private const int ModeOffset = 28;

    /// <summary>The size of <c>struct statx</c>.</summary>
    private const int StatxSize = 256;

    /// <summary><c>ENXIO</c>, what opening a socket answers.</summary>
    private const int NoSuchDeviceOrAddress = 6;

    private const int TypeMask = 0xF000;
    private const int RegularType = 0x8000;

    /// <summary>
    /// Opens <paramref name="path"/> for reading, unbuffered, without getting in the way of the rename that replaces it.
    /// Returns <see langword="null"/>, with what the path holds in <paramref name="kind"/>, when it is not a regular file.
    /// </summary>
    /// <exception cref="FileNotFoundException">Nothing is at <paramref name="path"/>.</exception>
    /// <exception cref="DirectoryNotFoundException">The directory of <paramref name="path"/> is gone.</exception>
    /// <exception cref="UnauthorizedAccessException">Reading it is not permitted.</exception>
    /// <exception cref="IOException">It could not be opened.</exception>
    public static FileStream? OpenRead(string path, out string? kind)
    {
        kind = null;
        if (!OperatingSystem.IsLinux())
        {
            if (Directory.Exists(path))
            {
                kind = "directory";
                return null;
            }

            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        }

        var fd = Open(path, ReadOnly | NonBlocking | CloseOnExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == NoSuchDeviceOrAddress)
            {
                // What opening a socket answers.
                kind = "socket";
                return null;
            }

            throw Failure(path, errno);
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            kind = KindOf(handle, path);
            if (kind is not null)
            {
                handle.Dispose();
                return null;
            }

            return new FileStream(handle, FileAccess.Read, bufferSize: 0);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>What the open <paramref name="handle"/> is when it is not a regular file; <see langword="null"/> when it is.</summary>
    private static string? KindOf(SafeFileHandle handle, string path)
    {
        Span<byte> status = stackalloc byte[StatxSize];
        int failed;
        try
        {
            failed = Statx((int)handle.DangerousGetHandle(), "", EmptyPath, TypeField, ref MemoryMarshal.GetReference(status));
        }
        catch (EntryPointNotFoundException)
        {
            // A C library without statx (glibc before 2.28, an old musl): the type is not checked. Opened without
            // blocking, a FIFO still cannot stall the caller; reading it fails instead.
            return null;
        }

        if (failed != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"Failed reading the type of {Path.GetFileName(path)}: {new Win32Exception(errno).Message}", errno);
        }

        return (MemoryMarshal.Read<ushort>(status[ModeOffset..]) & TypeMask) switch
        {
            RegularType => null,
            0x1000 => "FIFO",
            0x2000 => "character device",
            0x4000 => "directory",
            0x6000 => "block device",
            0xC000 => "socket",
            _ => "file that is not a regular one",
        };
    }

    /// <summary>The exception a failed <c>open</c> means, as .NET would throw it.</summary>
    private static Exception Failure(string path, int errno)
    {
        var name = Path.GetFileName(path);
        var message = new Win32Exception(errno).Message;
        return errno switch
        {
            2 when Directory.Exists(Path.GetDirectoryName(path)) => new FileNotFoundException($"Could not find file '{name}'.", path),
            2 or 20 => new DirectoryNotFoundException($"Could not find a part of the path '{path}'."),
            1 or 13 => new UnauthorizedAccessException($"Access to the path '{path}' is denied: {message}"),
            _ => new IOException($"{message} : '{path}'", errno),
        };
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, ref byte status);
}
