using System.Diagnostics;
using System.Globalization;

namespace Asm.Testing.Cleanup;

/// <summary>
/// Temporary directories of the tests, all under one root per test process (<c>asm-test-{pid}-{random}</c> in the
/// temp directory). The root is removed when the process exits; a root whose process died without exiting (killed)
/// is removed by the next test process that uses this class, which knows it is orphaned because nobody holds the
/// lock on its <c>owner.lock</c> any more. File systems mounted under a root (the disk-full tests) are unmounted
/// first.
/// </summary>
public static class TestDirectories
{
    /// <summary>The prefix of every root; test.sh looks for leftovers by it.</summary>
    public const string RootPrefix = "asm-test-";

    private const string OwnerLockName = "owner.lock";
    private static readonly Lazy<string> LazyRoot = new(CreateRoot);
    private static FileStream? s_ownerLock;

    /// <summary>The root of this process's temporary directories, created on first use.</summary>
    public static string Root => LazyRoot.Value;

    /// <summary>Creates a new, empty directory under <see cref="Root"/> whose name starts with <paramref name="prefix"/>.</summary>
    /// <returns>The directory's full path.</returns>
    public static string Create(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var path = Path.Combine(Root, prefix + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Removes <paramref name="path"/> and everything under it (unmounting what is mounted there); no error if it is gone.</summary>
    public static void Delete(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        UnmountUnder(path);
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A child process may still be writing for a moment; the root goes at exit, or with the next run.
        }
    }

    private static string CreateRoot()
    {
        var temp = Path.GetTempPath();
        SweepOrphans(temp);
        var root = Path.Combine(temp, string.Create(CultureInfo.InvariantCulture, $"{RootPrefix}{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}"));
        Directory.CreateDirectory(root);

        // Held (flock) for the life of the process; the kernel lets go when the process dies, however it dies.
        s_ownerLock = new FileStream(Path.Combine(root, OwnerLockName), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            Delete(root);
            s_ownerLock.Dispose();
        };
        return root;
    }

    private static void SweepOrphans(string temp)
    {
        foreach (var root in Directory.EnumerateDirectories(temp, RootPrefix + "*"))
        {
            if (IsOrphaned(root))
            {
                Delete(root);
            }
        }
    }

    private static bool IsOrphaned(string root)
    {
        var lockPath = Path.Combine(root, OwnerLockName);
        try
        {
            using var probe = new FileStream(lockPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return true;
        }
        catch (FileNotFoundException)
        {
            // Being created right now, or an owner that died between creating the root and its lock.
            return Directory.GetCreationTimeUtc(root) < DateTime.UtcNow.AddMinutes(-1);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void UnmountUnder(string path)
    {
        var prefix = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        string[] lines;
        try
        {
            lines = File.ReadAllLines("/proc/self/mountinfo");
        }
        catch (IOException)
        {
            return;
        }

        // Field 5 is the mount point, with spaces and the like escaped as octal; deepest first.
        var points = lines.Select(l => l.Split(' ')[4].Replace("\\040", " ", StringComparison.Ordinal))
            .Where(p => p == prefix || p.StartsWith(prefix + "/", StringComparison.Ordinal))
            .OrderByDescending(p => p.Length);
        foreach (var point in points)
        {
            using var umount = Process.Start(new ProcessStartInfo("umount", ["-l", point]) { UseShellExecute = false });
            umount?.WaitForExit();
        }
    }
}
