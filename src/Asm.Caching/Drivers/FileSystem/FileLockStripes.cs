using System.Diagnostics;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>
/// 256 striped locks that serialize the read-modify-write of one file among the requests of this process and among
/// the processes that share the directory.
/// </summary>
/// <remarks>
/// <para>
/// A stripe is the first byte of a file's name hash. Within the process a <see cref="SemaphoreSlim"/> per stripe
/// queues the callers without polling; across processes the holder keeps <c>.locks/xx.lock</c> open with
/// <see cref="FileShare.None"/>, which .NET turns into an exclusive advisory <c>flock</c> on Unix and a sharing lock
/// on Windows. Another process's attempt fails at once and is retried with a short backoff. The operating system drops
/// the lock when its holder dies, and lock files are never deleted, so there is no stale lock and no unlink race.
/// </para>
/// <para>
/// Setting <c>DOTNET_SYSTEM_IO_DISABLEFILELOCKING</c> turns <c>flock</c> off in .NET and with it the safety between
/// processes; the lock within the process still holds.
/// </para>
/// </remarks>
internal sealed class FileLockStripes
{
    /// <summary>How many stripes there are: one per value of a hash's first byte.</summary>
    public const int Count = 256;

    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMilliseconds(20);

    /// <summary>How a lock file is opened for writing: created when missing, readable and writable by this user alone.</summary>
    private static readonly FileStreamOptions LockFileOptions = FileSystemDriver.OwnerOnlyFile(FileMode.OpenOrCreate, FileAccess.ReadWrite);

    private readonly string _directory;
    private readonly TimeSpan _timeout;
    private readonly SemaphoreSlim[] _local = new SemaphoreSlim[Count];

    public FileLockStripes(string directory, TimeSpan timeout)
    {
        _directory = directory;
        _timeout = timeout;
        for (var i = 0; i < Count; i++)
        {
            _local[i] = new SemaphoreSlim(1, 1);
        }
    }

    /// <summary>
    /// Creates the directory of the lock files, private to this user as the session directory is, unless it exists: with
    /// a permissive umask (002) it would otherwise let group members replace lock files.
    /// </summary>
    public void CreateDirectory() => FileSystemDriver.CreatePrivateDirectory(_directory);

    /// <summary>Takes stripe <paramref name="stripe"/>; dispose the result to release it.</summary>
    /// <exception cref="TimeoutException">Another process held the stripe longer than the configured timeout.</exception>
    public async ValueTask<Holder> AcquireAsync(int stripe, CancellationToken cancellationToken)
    {
        var local = _local[stripe];
        var started = Stopwatch.GetTimestamp();
        if (!await local.WaitAsync(_timeout, cancellationToken).ConfigureAwait(false))
        {
            throw Timeout(stripe);
        }

        try
        {
            var path = Path.Combine(_directory, $"{stripe:x2}.lock");
            var backoff = FirstBackoff;
            while (true)
            {
                if (TryOpenExclusive(path) is { } file)
                {
                    return new Holder(file, local);
                }

                if (Stopwatch.GetElapsedTime(started) > _timeout)
                {
                    throw Timeout(stripe);
                }

                // Real time on purpose: this waits for another process, not for anything the application's clock rules.
                await Task.Delay(backoff, TimeProvider.System, cancellationToken).ConfigureAwait(false);
                backoff = backoff * 2 < MaxBackoff ? backoff * 2 : MaxBackoff;
            }
        }
        catch
        {
            local.Release();
            throw;
        }
    }

    /// <summary>
    /// Opens and locks the lock file, or returns <see langword="null"/> when another process holds it. On a disk that
    /// cannot be written (read-only, permission denied) the existing lock file is opened for reading, which locks it
    /// just as well, so that reads go on; any other failure (a full disk) is thrown as it is, never mistaken for a
    /// held lock, and a missing lock directory as the <see cref="DirectoryNotFoundException"/> it is.
    /// </summary>
    private static FileStream? TryOpenExclusive(string path)
    {
        try
        {
            return new FileStream(path, LockFileOptions);
        }
        catch (IOException ex) when (IsHeldElsewhere(ex))
        {
            return null;
        }
        catch (Exception ex) when (ex is (IOException and not DirectoryNotFoundException) or UnauthorizedAccessException)
        {
            try
            {
                return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.None, bufferSize: 0);
            }
            catch (IOException again) when (IsHeldElsewhere(again))
            {
                return null;
            }
            catch (Exception again) when (again is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"The lock file {Path.GetFileName(path)} of the session directory cannot be opened: {ex.Message}", ex);
            }
        }
    }

    /// <summary>
    /// Whether opening failed because another holder has the lock: on Unix <c>flock</c>'s EWOULDBLOCK, which .NET
    /// reports as a sharing violation whose HResult is the errno (11 on Linux, 35 on macOS and the BSDs); on Windows
    /// a sharing or lock violation.
    /// </summary>
    private static bool IsHeldElsewhere(IOException ex) =>
        ex is not (FileNotFoundException or DirectoryNotFoundException or PathTooLongException)
        && (OperatingSystem.IsWindows()
            ? ex.HResult is unchecked((int)0x80070020) or unchecked((int)0x80070021)
            : ex.HResult == (OperatingSystem.IsLinux() ? 11 : 35));

    private TimeoutException Timeout(int stripe) =>
        new($"The file lock '{stripe:x2}.lock' of the session directory was not acquired within {_timeout}; " +
            "another request or process holds it. Raise FileSystemDriverOptions.FileLockTimeout if operations are this slow.");

    /// <summary>A held stripe. Releasing closes the lock file, which drops the operating system's lock.</summary>
    internal readonly struct Holder(FileStream file, SemaphoreSlim local) : IDisposable
    {
        public void Dispose()
        {
            file.Dispose();
            local.Release();
        }
    }
}
