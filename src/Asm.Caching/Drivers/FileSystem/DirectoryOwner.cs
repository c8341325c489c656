using System.ComponentModel;
using System.Runtime.InteropServices;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>
/// Who owns a directory, against the user the app runs as, which .NET offers no API for: <c>statx</c> and
/// <c>geteuid</c> on Linux (the layout of <c>struct statx</c> is the same on every architecture). Elsewhere, or with a C
/// library without <c>statx</c>, the owner is not checked.
/// </summary>
internal static partial class DirectoryOwner
{
    /// <summary>The current directory, for a relative path (<c>AT_FDCWD</c>).</summary>
    private const int CurrentDirectory = -100;

    /// <summary>Asks for the owner alone (<c>STATX_UID</c>).</summary>
    private const uint OwnerField = 0x8;

    /// <summary>Where <c>stx_uid</c> lies in <c>struct statx</c>, after <c>stx_mask</c>, <c>stx_blksize</c>, <c>stx_attributes</c> and <c>stx_nlink</c>.</summary>
    private const int OwnerOffset = 20;

    /// <summary>The size of <c>struct statx</c>.</summary>
    private const int StatxSize = 256;

    /// <summary>
    /// Whether <paramref name="path"/> belongs to the user the app runs as or to root, who alone may then change what it
    /// holds (once no one else may write to it); always on systems other than Linux.
    /// </summary>
    /// <param name="path">The directory.</param>
    /// <param name="owner">Its owner's uid (0 when not checked).</param>
    /// <param name="appUser">The app's effective uid (0 when not checked).</param>
    /// <exception cref="IOException">The directory's owner could not be read.</exception>
    public static bool IsAppUserOrRoot(string path, out uint owner, out uint appUser)
    {
        owner = appUser = 0;
        if (!OperatingSystem.IsLinux())
        {
            return true;
        }

        Span<byte> status = stackalloc byte[StatxSize];
        int failed;
        try
        {
            failed = Statx(CurrentDirectory, path, 0, OwnerField, ref MemoryMarshal.GetReference(status));
        }
        catch (EntryPointNotFoundException)
        {
            // A C library without statx (glibc before 2.28, an old musl): the owner is not checked there.
            return true;
        }

        if (failed != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"Failed reading the owner of the directory {path}: {new Win32Exception(errno).Message}", errno);
        }

        owner = MemoryMarshal.Read<uint>(status[OwnerOffset..]);
        appUser = GetEffectiveUserId();
        return owner == appUser || owner == 0;
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, ref byte status);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();
}
