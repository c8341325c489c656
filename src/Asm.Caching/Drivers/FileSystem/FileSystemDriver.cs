using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Asm.Caching.Caching;
using Asm.Caching.Locking;
using Asm.Caching.Records;
using Asm.Caching.Sessions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>
/// Keeps sessions and cache entries as files in one directory, which several processes on one machine may share.
/// </summary>
/// <remarks>
/// <para>
/// A file's name is the SHA-256 of its key with a domain prefix (sessions by id, cache entries by key), in hex,
/// so no key, however hostile, names anything outside the directory. A write goes to a temporary file in the same
/// directory that is then renamed over the target, so a reader sees the old file or the new one, never a torn one.
/// </para>
/// <para>
/// Every read-modify-write of a file runs under the stripe lock of its name (see <see cref="FileLockStripes"/>), so
/// the rules of <see cref="SessionRecord"/> apply atomically across requests and processes. Plain cache reads take no
/// lock. Expired files stay until the sweeper removes them; requests never sweep.
/// </para>
/// </remarks>
internal sealed partial class FileSystemDriver : ISessionDriver, ISessionTransferDriver, ISessionTrackingDriver, ICacheDriver, ISweepableDriver
{
    private const string SessionExtension = ".session";
    private const string CacheExtension = ".cache";
    private const string TempExtension = ".tmp";
    private const string LocksDirectory = ".locks";

    private static readonly TimeSpan StaleTempAge = TimeSpan.FromMinutes(1);
    private static readonly byte[] SessionDomain = "asm-session\0"u8.ToArray();
    private static readonly byte[] CacheDomain = "asm-cache\0"u8.ToArray();

    private readonly bool _durable;
    private readonly FileLockStripes _locks;
    private readonly LockReleaseSignals _signals;
    private readonly ILogger<FileSystemDriver> _logger;
    private volatile bool _directoriesReady;

    public FileSystemDriver(IOptions<FileSystemDriverOptions> options, TimeProvider timeProvider, ILogger<FileSystemDriver> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _logger = logger;
        var settings = options.Value;
        DirectoryPath = Path.GetFullPath(settings.Directory);
        _durable = settings.Durable;
        _locks = new FileLockStripes(Path.Combine(DirectoryPath, LocksDirectory), settings.FileLockTimeout);
        _signals = new LockReleaseSignals(timeProvider);
        try
        {
            EnsureDirectories();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The app starts anyway: the health check reports the cause, writes fail with it, and the first write or
            // probe after the disk is writable again creates the directories.
            DirectoryUnavailable(DirectoryPath, ex);
        }
    }

    /// <summary>The full path of the directory.</summary>
    internal string DirectoryPath { get; }

    /// <summary>
    /// Creates the directory (private to this user) and its lock directory unless they exist. Called at start-up, and
    /// again before each operation and health probe until it succeeded once, so that a disk that was read-only or
    /// denied access at start-up is used as soon as it can be.
    /// </summary>
    /// <exception cref="IOException">The directory cannot be created (read-only disk, full disk).</exception>
    /// <exception cref="UnauthorizedAccessException">
    /// The directory cannot be created (permission denied), or it exists and other users may write to it or own it.
    /// </exception>
    private void EnsureDirectories()
    {
        if (_directoriesReady)
        {
            return;
        }

        if (!Directory.Exists(DirectoryPath))
        {
            CreatePrivateDirectory(DirectoryPath);
            DirectoryCreated(DirectoryPath);
        }

        EnsurePrivate(DirectoryPath);

        _locks.CreateDirectory();
        _directoriesReady = true;
    }

    /// <summary>
    /// Creates the directories again if they are gone: removed while the app ran (by a cleaner of temporary folders, or
    /// by hand, perhaps recreated without its lock directory), as <see cref="EnsureDirectories"/> does at start-up.
    /// </summary>
    private void RecreateDirectories()
    {
        _directoriesReady = false;
        EnsureDirectories();
    }

    /// <summary>
    /// Takes the stripe lock <paramref name="stripe"/>, once the directories exist; a lock directory removed while the
    /// app ran is created again.
    /// </summary>
    private async ValueTask<FileLockStripes.Holder> LockStripeAsync(int stripe, CancellationToken cancellationToken)
    {
        EnsureDirectories();
        try
        {
            return await _locks.AcquireAsync(stripe, cancellationToken).ConfigureAwait(false);
        }
        catch (DirectoryNotFoundException)
        {
            RecreateDirectories();
            return await _locks.AcquireAsync(stripe, cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var file = SessionFile(request.Key.Id);
        if (request.Lease is null)
        {
            // A load that takes no lease and whose slide is not worth a write is a pure read, without the stripe lock:
            // files are replaced by rename, so a reader sees a whole file, the old one or the new one.
            var (read, gone) = await ReadSessionAsync(file, request.Key.Id, cancellationToken).ConfigureAwait(false);
            if (read is null)
            {
                return SessionLoadResult.Of(gone);
            }

            var readOnly = read.Load(request, out var slides);
            if (!slides)
            {
                return readOnly;
            }
        }

        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            var (record, missing) = await ReadSessionAsync(file, request.Key.Id, cancellationToken).ConfigureAwait(false);
            if (record is null)
            {
                return SessionLoadResult.Of(missing);
            }

            var result = record.Load(request, out var changed);
            if (changed)
            {
                // The idle expiry slid, and a lease may have been taken. A lease must be stored; a slide alone may
                // fail (a full or read-only disk) without failing the read: the session keeps its older expiry.
                try
                {
                    await WriteSessionAsync(file, record, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (request.Lease is null && ex is IOException or UnauthorizedAccessException)
                {
                    IdleSlideNotStored(SessionKey.Hash(request.Key.Id), ex);
                }
            }

            return result;
        }
    }

    public async ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        SessionValueName.ValidateAll(request);
        var file = SessionFile(request.SessionId);
        SessionCommitStatus status;
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            status = await CommitLockedAsync(file, request, cancellationToken).ConfigureAwait(false);
        }

        if (request.ReleaseLock && status == SessionCommitStatus.Committed)
        {
            _signals.Signal(request.SessionId);
        }

        return status;
    }

    public async ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(lease);
        var file = SessionFile(sessionId);
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            var (record, _) = await ReadSessionAsync(file, sessionId, cancellationToken).ConfigureAwait(false);
            if (record is null || !record.Renew(lease, SessionRecord.Ms(now)))
            {
                return false;
            }

            await WriteSessionAsync(file, record, cancellationToken).ConfigureAwait(false);
            return true;
        }
    }

    public async ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(lease);
        var file = SessionFile(sessionId);
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            var (record, _) = await ReadSessionAsync(file, sessionId, cancellationToken).ConfigureAwait(false);
            if (record is null || !record.Release(lease))
            {
                return;
            }

            await WriteSessionAsync(file, record, cancellationToken).ConfigureAwait(false);
        }

        _signals.Signal(sessionId);
    }

    public async ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var file = SessionFile(request.Key.Id);
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            var (record, _) = await ReadSessionAsync(file, request.Key.Id, cancellationToken).ConfigureAwait(false);
            if (record is null)
            {
                return SessionCommitStatus.NotFound;
            }

            var status = record.Regenerate(request);
            if (status == SessionCommitStatus.Committed)
            {
                await WriteSessionAsync(file, record, cancellationToken).ConfigureAwait(false);
            }

            return status;
        }
    }

    public async ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        var file = SessionFile(sessionId);
        var purgeAt = SessionRecord.Ms(tombstoneExpiresAt);
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            if (purgeAt <= SessionRecord.Ms(now))
            {
                // A tombstone that ends at once is no record (as the sweeper would find it): the file goes, and when
                // durable, its name with it (a move taken back must not come back after a power cut).
                File.Delete(file.Path);
                if (_durable)
                {
                    DirectorySync.Flush(Path.GetDirectoryName(file.Path)!);
                }

                _signals.Signal(sessionId);
                return;
            }

            var (record, _) = await ReadSessionAsync(file, sessionId, cancellationToken).ConfigureAwait(false);
            record ??= SessionRecord.Tombstone(purgeAt);
            record.Destroy(purgeAt);
            await WriteEndAsync(file, record, sessionId, cancellationToken).ConfigureAwait(false);
        }

        _signals.Signal(sessionId);
    }

    public async ValueTask<SessionExportResult> ExportAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(lease);
        var file = SessionFile(sessionId);
        try
        {
            using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
            {
                return await ExportFromAsync(file, sessionId, lease, now, locking: true, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (IOException ex) when (ReadOnlyFileSystem.IsCauseOf(ex))
        {
            // Nobody can lock, change or end a record on a read-only file system: it is handed over as it stands,
            // without a lease (see SessionExportResult.Lease), and the caller leaves it there.
            return await ExportFromAsync(file, sessionId, lease, now, locking: false, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Reads the session and exports it under <paramref name="lease"/>, which is written into its file when
    /// <paramref name="locking"/>; otherwise the record is handed over without a lease.
    /// </summary>
    private async ValueTask<SessionExportResult> ExportFromAsync(
        StoredFile file, string sessionId, SessionLease lease, DateTimeOffset now, bool locking, CancellationToken cancellationToken)
    {
        var (record, missing) = await ReadSessionAsync(file, sessionId, cancellationToken).ConfigureAwait(false);
        if (record is null)
        {
            return SessionExportResult.Of(missing);
        }

        var result = record.Export(sessionId, lease, SessionRecord.Ms(now));
        if (result.Status != SessionLoadStatus.Found)
        {
            return result;
        }

        if (!locking)
        {
            return new SessionExportResult { Status = result.Status, Snapshot = result.Snapshot };
        }

        await WriteSessionAsync(file, record, cancellationToken).ConfigureAwait(false);
        return result;
    }

    public async ValueTask<bool> ImportAsync(SessionSnapshot snapshot, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var file = SessionFile(snapshot.SessionId);
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            // As for a creation: any file with this id, even a tombstone or an unreadable one, refuses the import.
            if (Path.Exists(file.Path))
            {
                return false;
            }

            await WriteSessionAsync(file, SessionRecord.Import(snapshot), cancellationToken).ConfigureAwait(false);
            return true;
        }
    }

    /// <remarks>
    /// Releases in this process wake the waiter at once; a release by another process is seen when
    /// <paramref name="maxWait"/> ends and the caller retries.
    /// </remarks>
    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
        _signals.WaitAsync(sessionId, maxWait, cancellationToken);

    public async ValueTask<byte[]?> GetAsync(string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        var file = CacheFile(key);
        var entry = await ReadCacheEntryAsync(file, key, cancellationToken).ConfigureAwait(false);
        if (entry is null || entry.IsExpired(now))
        {
            return null;
        }

        if (entry.Sliding is null)
        {
            return entry.Value;
        }

        try
        {
            return (await SlideAsync(file, key, now, cancellationToken).ConfigureAwait(false))?.Value;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // As a session's read: a slide that cannot be written (a full or read-only disk) does not fail the read;
            // the entry keeps its older expiry.
            CacheSlideNotStored(SessionKey.Hash(key), ex);
            return entry.Value;
        }
    }

    public async ValueTask SetAsync(string key, byte[] value, CacheEntryExpiration expiration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        var file = CacheFile(key);
        var data = CacheFileFormat.Serialize(new CacheFileEntry(expiration.ExpiresAt, expiration.AbsoluteExpiresAt, expiration.Sliding, value));

        // Under the lock, so that a concurrent slide cannot write the old value back over this one.
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            await WriteAtomicallyAsync(file.Path, data, cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask RefreshAsync(string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        var file = CacheFile(key);
        var entry = await ReadCacheEntryAsync(file, key, cancellationToken).ConfigureAwait(false);
        if (entry is { Sliding: not null } && !entry.IsExpired(now))
        {
            await SlideAsync(file, key, now, cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask RemoveAsync(string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        var file = CacheFile(key);
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            File.Delete(file.Path);
        }
    }

    /// <summary>
    /// Removes session files whose purge time passed and expired cache files, each re-checked under its stripe lock,
    /// and temporary files abandoned for more than a minute (beside the user indexes and end checks too). Unreadable
    /// files are left for inspection.
    /// </summary>
    public async ValueTask<int> SweepAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var removed = 0;
        EnsureDirectories();
        foreach (var path in Directory.EnumerateFiles(DirectoryPath))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var name = Path.GetFileName(path);
            try
            {
                if (name.EndsWith(TempExtension, StringComparison.Ordinal))
                {
                    RemoveIfAbandoned(path, name, now);
                    continue;
                }

                var isSession = name.EndsWith(SessionExtension, StringComparison.Ordinal);
                if ((!isSession && !name.EndsWith(CacheExtension, StringComparison.Ordinal))
                    || !TryParseStripe(name, out var stripe)
                    || !await IsExpiredAsync(path, isSession, now, cancellationToken).ConfigureAwait(false))
                {
                    continue;
                }

                using (await LockStripeAsync(stripe, cancellationToken).ConfigureAwait(false))
                {
                    // A request may have renewed the file since the unlocked look.
                    if (await IsExpiredAsync(path, isSession, now, cancellationToken).ConfigureAwait(false))
                    {
                        File.Delete(path);
                        removed++;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                SweepSkippedFile(name, ex);
            }
        }

        // A process killed while it rewrote a user index or an end check left its temporary file beside them.
        foreach (var subdirectory in (string[])[UsersDirectory, EndsDirectory])
        {
            var path = Path.Combine(DirectoryPath, subdirectory);
            foreach (var temp in Directory.Exists(path) ? Directory.EnumerateFiles(path, "*" + TempExtension) : [])
            {
                cancellationToken.ThrowIfCancellationRequested();
                var name = Path.GetFileName(temp);
                try
                {
                    RemoveIfAbandoned(temp, name, now);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    SweepSkippedFile(name, ex);
                }
            }
        }

        return removed;
    }

    /// <summary>The path of the file of session <paramref name="sessionId"/>.</summary>
    internal string GetSessionFilePath(string sessionId) => SessionFile(sessionId).Path;

    /// <summary>The path of the file of cache entry <paramref name="key"/>.</summary>
    internal string GetCacheFilePath(string key) => CacheFile(key).Path;

    /// <summary>Removes the temporary file at <paramref name="path"/> if it was abandoned (not written for a minute).</summary>
    private void RemoveIfAbandoned(string path, string name, DateTimeOffset now)
    {
        if (File.GetLastWriteTimeUtc(path) < (now - StaleTempAge).UtcDateTime)
        {
            File.Delete(path);
            StaleTempFileRemoved(name);
        }
    }

    private async ValueTask<SessionCommitStatus> CommitLockedAsync(StoredFile file, SessionCommitRequest request, CancellationToken cancellationToken)
    {
        if (request.CreateWithSecret is not null)
        {
            // Any file with this id, even a tombstone or an unreadable one (or a directory in its place), refuses the creation.
            if (Path.Exists(file.Path))
            {
                return SessionCommitStatus.NotFound;
            }

            await WriteSessionAsync(file, SessionRecord.Create(request), cancellationToken).ConfigureAwait(false);
            return SessionCommitStatus.Committed;
        }

        var (record, _) = await ReadSessionAsync(file, request.SessionId, cancellationToken).ConfigureAwait(false);
        if (record is null)
        {
            return SessionCommitStatus.NotFound;
        }

        var status = record.Commit(request);
        if (status == SessionCommitStatus.Committed)
        {
            await WriteSessionAsync(file, record, cancellationToken).ConfigureAwait(false);
        }

        return status;
    }

    /// <summary>Reads a session file; without a record, says whether the file was missing or unreadable.</summary>
    private async ValueTask<(SessionRecord? Record, SessionLoadStatus Missing)> ReadSessionAsync(
        StoredFile file,
        string sessionId,
        CancellationToken cancellationToken)
    {
        var data = await ReadAllBytesOrNullAsync(file.Path, cancellationToken).ConfigureAwait(false);
        if (data is null)
        {
            return (null, SessionLoadStatus.Unknown);
        }

        if (!SessionFileFormat.TryDeserialize(data, out var record))
        {
            if (_logger.IsEnabled(LogLevel.Warning))
            {
                SessionFileCorrupt(SessionKey.Hash(sessionId));
            }

            return (null, SessionLoadStatus.Corrupt);
        }

        return (record, SessionLoadStatus.Found);
    }

    private ValueTask WriteSessionAsync(StoredFile file, SessionRecord record, CancellationToken cancellationToken) =>
        WriteAtomicallyAsync(file.Path, SessionFileFormat.Serialize(record), cancellationToken);

    /// <summary>
    /// Writes a record that ends its session (a tombstone, an idle expiry set to the epoch). When the disk takes no
    /// write (full, over quota) the file is deleted instead, which needs no space, so that a session whose end cannot
    /// be written does not stay usable: its cookie then reads as unknown rather than destroyed or expired, and its
    /// commits in flight are refused all the same (a commit needs the file). A disk that refuses the deletion too
    /// (read-only) fails the operation.
    /// </summary>
    private async ValueTask WriteEndAsync(StoredFile file, SessionRecord record, string sessionId, CancellationToken cancellationToken)
    {
        try
        {
            await WriteSessionAsync(file, record, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            File.Delete(file.Path);
            SessionEndWrittenAsDeletion(SessionKey.Hash(sessionId), ex);
        }
    }

    private async ValueTask<CacheFileEntry?> ReadCacheEntryAsync(StoredFile file, string key, CancellationToken cancellationToken)
    {
        var data = await ReadAllBytesOrNullAsync(file.Path, cancellationToken).ConfigureAwait(false);
        if (data is null)
        {
            return null;
        }

        if (!CacheFileFormat.TryDeserialize(data, out var entry))
        {
            if (_logger.IsEnabled(LogLevel.Warning))
            {
                CacheFileCorrupt(SessionKey.Hash(key));
            }

            return null;
        }

        return entry;
    }

    /// <summary>Slides a sliding entry under its lock; returns the entry, or <see langword="null"/> when it is gone.</summary>
    private async ValueTask<CacheFileEntry?> SlideAsync(StoredFile file, string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            var entry = await ReadCacheEntryAsync(file, key, cancellationToken).ConfigureAwait(false);
            if (entry is null || entry.IsExpired(now))
            {
                return null;
            }

            if (entry.Sliding is not null)
            {
                entry = entry with { ExpiresAt = CacheEntryExpiration.NextExpiry(now, entry.AbsoluteExpiresAt, entry.Sliding) };
                await WriteAtomicallyAsync(file.Path, CacheFileFormat.Serialize(entry), cancellationToken).ConfigureAwait(false);
            }

            return entry;
        }
    }

    private StoredFile SessionFile(string sessionId) => Locate(SessionDomain, sessionId, SessionExtension);

    private StoredFile CacheFile(string key) => Locate(CacheDomain, key, CacheExtension);

    /// <summary>
    /// Names the file of <paramref name="key"/>: the SHA-256 of the domain and the key's UTF-16 code units (exact for
    /// any string, lone surrogates and NUL included), in lowercase hex. Its first byte picks the lock stripe.
    /// </summary>
    private StoredFile Locate(byte[] domain, string key, string extension)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(domain);
        hash.AppendData(MemoryMarshal.AsBytes(key.AsSpan()));
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        hash.GetHashAndReset(digest);
        return new StoredFile(Path.Combine(DirectoryPath, Convert.ToHexStringLower(digest) + extension), digest[0]);
    }

    private static bool TryParseStripe(string fileName, out int stripe) =>
        int.TryParse(fileName.AsSpan(0, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out stripe);

    private static async ValueTask<bool> IsExpiredAsync(string path, bool isSession, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var header = new byte[Math.Max(SessionFileFormat.HeaderLength, CacheFileFormat.HeaderLength)];
        int read;
        try
        {
            if (RegularFile.OpenRead(path, out _) is not { } stream)
            {
                // Not a file (a FIFO, a directory): left for inspection, as an unreadable file is.
                return false;
            }

            await using (stream.ConfigureAwait(false))
            {
                read = await stream.ReadAtLeastAsync(header, header.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return false;
        }

        return isSession
            ? SessionFileFormat.TryReadPurgeAt(header.AsSpan(0, read), out var purgeAt) && purgeAt <= SessionRecord.Ms(now)
            : CacheFileFormat.TryReadExpiresAt(header.AsSpan(0, read), out var expiresAt) && expiresAt <= now;
    }

    /// <summary>
    /// Reads a file of the directory, or <see langword="null"/> when there is none. A directory not yet known to be
    /// the app's own is checked first (see <see cref="EnsurePrivate"/>): a read must not find a file another user planted.
    /// </summary>
    private async ValueTask<byte[]?> ReadAllBytesOrNullAsync(string path, CancellationToken cancellationToken)
    {
        if (!_directoriesReady && Directory.Exists(DirectoryPath))
        {
            EnsureDirectories();
        }

        try
        {
            if (RegularFile.OpenRead(path, out var kind) is not { } stream)
            {
                // Read as a record no format accepts: a damaged one, reported as such, never a hang or a failure.
                NotAFile(Path.GetFileName(path), kind);
                return [];
            }

            await using (stream.ConfigureAwait(false))
            {
                // Files are replaced by renames, never written in place, so the length does not change under us.
                var length = stream.Length;
                if (length > Array.MaxLength)
                {
                    throw new IOException($"The file '{Path.GetFileName(path)}' is too large to be a session or cache file.");
                }

                var data = new byte[length];
                var read = await stream.ReadAtLeastAsync(data, data.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                return read == data.Length ? data : data[..read];
            }
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// Writes a temporary file next to <paramref name="path"/> and renames it over <paramref name="path"/>. When
    /// <see cref="FileSystemDriverOptions.Durable"/>, the temporary file is flushed to disk before the rename and its
    /// directory after it, so that the new file, and its name, survive a power cut once the write returns.
    /// </summary>
    private async ValueTask WriteAtomicallyAsync(string path, byte[] data, CancellationToken cancellationToken)
    {
        var temp = $"{path}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}{TempExtension}";
        try
        {
            var stream = new FileStream(temp, OwnerOnlyFile(FileMode.CreateNew, FileAccess.Write));
            await using (stream.ConfigureAwait(false))
            {
                await stream.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                if (_durable)
                {
                    stream.Flush(flushToDisk: true);
                }
            }

            File.Move(temp, path, overwrite: true);
            if (_durable)
            {
                // The rename is an entry of the file's own directory (the store's, or .users or .ends beneath it).
                DirectorySync.Flush(Path.GetDirectoryName(path)!);
            }
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The sweeper removes abandoned temporary files.
        }
    }

    /// <summary>
    /// Refuses a directory that users other than the app's may write to (made by someone else, as anyone may in a
    /// world-writable parent such as <c>/tmp</c>, or opened up since), or that another user owns (and so may open up, or
    /// fill, whenever it likes): they could plant session files there, a session of their choosing for a key they know,
    /// and delete or swap the app's own.
    /// </summary>
    private static void EnsurePrivate(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var mode = File.GetUnixFileMode(path);
        if ((mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
        {
            throw new UnauthorizedAccessException(
                $"The session directory '{path}' may be written by other users (mode {Convert.ToString((int)mode, 8)}), who could " +
                "plant sessions there: nothing is read from it or written to it. Make it private to the app's user (chmod 700), " +
                "or name a directory that does not exist yet, which the driver creates private.");
        }

        if (!DirectoryOwner.IsAppUserOrRoot(path, out var owner, out var appUser))
        {
            throw new UnauthorizedAccessException(
                $"The session directory '{path}' belongs to another user (uid {owner}; the app runs as uid {appUser}), who could " +
                "plant sessions there: nothing is read from it or written to it. Give it to the app's user (chown), or name a " +
                "directory that does not exist yet, which the driver creates private.");
        }
    }

    /// <summary>
    /// How a file of the store is opened: unshared, unbuffered, and created (when <paramref name="mode"/> creates it)
    /// readable and writable by this user alone, whatever the umask.
    /// </summary>
    internal static FileStreamOptions OwnerOnlyFile(FileMode mode, FileAccess access)
    {
        var options = new FileStreamOptions { Mode = mode, Access = access, Share = FileShare.None, BufferSize = 0 };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return options;
    }

    /// <summary>Creates <paramref name="path"/> (and its missing parents) readable, writable and searchable by this user alone.</summary>
    internal static void CreatePrivateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Warning,
        Message = "The file of session {SessionHash} is corrupt or of an unknown format version; the session reads as corrupt and the file is kept.")]
    private partial void SessionFileCorrupt(string sessionHash);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning,
        Message = "The file of cache entry {KeyHash} is corrupt or of an unknown format version; the entry reads as missing.")]
    private partial void CacheFileCorrupt(string keyHash);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Created the session directory {Directory}.")]
    private partial void DirectoryCreated(string directory);

    [LoggerMessage(EventId = 203, Level = LogLevel.Debug, Message = "Removed the abandoned temporary file {FileName}.")]
    private partial void StaleTempFileRemoved(string fileName);

    [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "Could not sweep {FileName}; the next sweep tries again.")]
    private partial void SweepSkippedFile(string fileName, Exception exception);

    [LoggerMessage(EventId = 205, Level = LogLevel.Warning,
        Message = "Session {SessionHash} was read, but its new idle expiry could not be written; it keeps the older one.")]
    private partial void IdleSlideNotStored(string sessionHash, Exception exception);

    [LoggerMessage(EventId = 206, Level = LogLevel.Error,
        Message = "The session directory {Directory} cannot be created; sessions fail until it can be (the health check reports the cause).")]
    private partial void DirectoryUnavailable(string directory, Exception exception);

    [LoggerMessage(EventId = 209, Level = LogLevel.Warning,
        Message = "The end of session {SessionHash} could not be written; its file was deleted instead, so its cookie reads as unknown.")]
    private partial void SessionEndWrittenAsDeletion(string sessionHash, Exception exception);

    [LoggerMessage(EventId = 210, Level = LogLevel.Warning,
        Message = "{FileName} in the session directory is a {Kind}, not a file: it reads as a damaged record and is left as it is.")]
    private partial void NotAFile(string fileName, string? kind);

    [LoggerMessage(EventId = 208, Level = LogLevel.Warning,
        Message = "Cache entry {KeyHash} was read, but its new sliding expiry could not be written; it keeps the older one.")]
    private partial void CacheSlideNotStored(string keyHash, Exception exception);

    /// <summary>Where a record lives and which lock stripe guards it.</summary>
    private readonly record struct StoredFile(string Path, int Stripe);
}
