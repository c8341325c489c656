using Asm.Testing.Cleanup;

namespace Asm.Testing.Faults;

/// <summary>
/// A small tmpfs the test mounts under its own temporary directory, to make a disk full or read-only on cue. It needs
/// root (or CAP_SYS_ADMIN), as CI and the development machines have; elsewhere it fails saying so. Unmounted on
/// disposal, and, if the test process is killed, by the next test process (see <see cref="TestDirectories"/>).
/// </summary>
public sealed class SmallDisk : IDisposable
{
    private const string FillerName = "filler";

    private SmallDisk(string path) => Path = path;

    /// <summary>The mount point.</summary>
    public string Path { get; }

    /// <summary>Mounts a tmpfs of <paramref name="kilobytes"/> KiB.</summary>
    /// <returns>The mounted disk.</returns>
    public static SmallDisk Mount(int kilobytes)
    {
        var path = TestDirectories.Create("asm-disk-");
        try
        {
            FaultCommand.Run("mount", "-t", "tmpfs", "-o", $"size={kilobytes}k,mode=0700", "tmpfs", path);
        }
        catch (InvalidOperationException ex)
        {
            TestDirectories.Delete(path);
            throw new InvalidOperationException(
                $"The disk-fault tests mount a small tmpfs, which needs root (or CAP_SYS_ADMIN): {ex.Message}", ex);
        }

        return new SmallDisk(path);
    }

    /// <summary>Fills the disk to the last byte with a filler file.</summary>
    public void Fill()
    {
        using var filler = new FileStream(System.IO.Path.Combine(Path, FillerName), FileMode.Append, FileAccess.Write);
        var block = new byte[4096];
        try
        {
            while (true)
            {
                filler.Write(block);
                filler.Flush();
            }
        }
        catch (IOException)
        {
            // No space left on device: full.
        }
    }

    /// <summary>Deletes the filler file, giving the space back.</summary>
    public void Free() => File.Delete(System.IO.Path.Combine(Path, FillerName));

    /// <summary>Remounts the disk read-only (<paramref name="readOnly"/>) or read-write.</summary>
    public void SetReadOnly(bool readOnly) => FaultCommand.Run("mount", "-o", readOnly ? "remount,ro" : "remount,rw", Path);

    public void Dispose() => TestDirectories.Delete(Path);
}
