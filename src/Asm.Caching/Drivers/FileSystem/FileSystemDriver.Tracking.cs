using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Asm.Caching.Records;
using Asm.Caching.Sessions;
using Microsoft.Extensions.Logging;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>
/// User binding, user indexes and the end-check schedule on files.
/// </summary>
/// <remarks>
/// <para>
/// A user index is <c>.users/&lt;SHA-256 of the user id&gt;.user</c>: the text <c>asm-users 1</c> and then one session
/// id per line (ids are URL-safe base64, so no line can hold anything else). It is rewritten under the stripe lock of its
/// name; no user id, however hostile, reaches a file name, and the raw id is kept only inside the session file.
/// </para>
/// <para>
/// An end check is <c>.ends/&lt;SHA-256 of the session id&gt;.end</c>: the due time (unix ms) and the session id on two
/// lines. It is claimed by renaming it to a name of the claimer's own: a rename of one file succeeds once, so one
/// process, of all that share the directory, gets each check.
/// </para>
/// </remarks>
internal sealed partial class FileSystemDriver
{
    private const string UsersDirectory = ".users";
    private const string EndsDirectory = ".ends";
    private const string UserIndexHeader = "asm-users 1";

    private static readonly byte[] UserDomain = "asm-user\0"u8.ToArray();

    public async ValueTask<SessionBindResult> BindUserAsync(SessionRegenerateRequest request, string userId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(userId);
        var file = SessionFile(request.Key.Id);
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            var (record, _) = await ReadSessionAsync(file, request.Key.Id, cancellationToken).ConfigureAwait(false);
            if (record is null)
            {
                return new SessionBindResult(SessionCommitStatus.NotFound, null);
            }

            var result = record.Bind(request, userId);
            if (result.Status == SessionCommitStatus.Committed)
            {
                await WriteSessionAsync(file, record, cancellationToken).ConfigureAwait(false);
            }

            return result;
        }
    }

    public async ValueTask<StoredSessionInfo?> GetInfoAsync(string sessionId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        var (record, _) = await ReadSessionAsync(SessionFile(sessionId), sessionId, cancellationToken).ConfigureAwait(false);
        return record?.Info(sessionId);
    }

    public async ValueTask<bool> ExpireSessionAsync(string sessionId, DateTimeOffset idleExpiresAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        var file = SessionFile(sessionId);
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            var (record, _) = await ReadSessionAsync(file, sessionId, cancellationToken).ConfigureAwait(false);
            if (record is null || !record.Expire(SessionRecord.Ms(idleExpiresAt)))
            {
                return false;
            }

            await WriteEndAsync(file, record, sessionId, cancellationToken).ConfigureAwait(false);
            return true;
        }
    }

    public async ValueTask AddToUserIndexAsync(string userId, string sessionId, CancellationToken cancellationToken) =>
        await UpdateUserIndexAsync(userId, ids => ids.Add(sessionId), cancellationToken).ConfigureAwait(false);

    public async ValueTask<IReadOnlyList<string>> GetUserIndexAsync(string userId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(userId);
        var (ids, damaged) = await ReadUserIndexAsync(UserIndexFile(userId).Path, cancellationToken).ConfigureAwait(false);

        // A damaged index is rebuilt and rewritten under its lock, once, rather than rebuilt by every read.
        return damaged
            ? [.. await UpdateUserIndexAsync(userId, static _ => { }, cancellationToken).ConfigureAwait(false)]
            : [.. ids];
    }

    public async ValueTask RemoveFromUserIndexAsync(string userId, IReadOnlyCollection<string> sessionIds, CancellationToken cancellationToken) =>
        await UpdateUserIndexAsync(userId, ids => ids.ExceptWith(sessionIds), cancellationToken).ConfigureAwait(false);

    public async ValueTask ScheduleEndCheckAsync(string sessionId, DateTimeOffset at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        var path = EndCheckPath(sessionId);
        EnsurePrivateDirectory(Path.GetDirectoryName(path)!);
        var text = string.Create(CultureInfo.InvariantCulture, $"{SessionRecord.Ms(at)}\n{sessionId}");
        await WriteAtomicallyAsync(path, Encoding.ASCII.GetBytes(text), cancellationToken).ConfigureAwait(false);
    }

    public ValueTask<bool> ClaimEndCheckAsync(string sessionId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(TryClaim(EndCheckPath(sessionId)) is not null);
    }

    public async ValueTask<IReadOnlyList<string>> ClaimDueEndChecksAsync(DateTimeOffset now, int max, CancellationToken cancellationToken)
    {
        List<string> claimed = [];
        var directory = Path.Combine(DirectoryPath, EndsDirectory);
        if (!Directory.Exists(directory))
        {
            return claimed;
        }

        var due = SessionRecord.Ms(now);
        foreach (var path in Directory.EnumerateFiles(directory, "*.end"))
        {
            if (claimed.Count >= max)
            {
                break;
            }

            (long At, string SessionId)? entry;
            try
            {
                entry = ParseEndCheck(await ReadAllBytesOrNullAsync(path, cancellationToken).ConfigureAwait(false));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // One file that cannot be read (a bad sector, a broken link) must not keep every other end unreported.
                SweepSkippedFile(Path.GetFileName(path), ex);
                continue;
            }

            if (entry is not { } check || check.At > due)
            {
                continue;
            }

            // What was read may have been replaced since (claimed and scheduled again): the claimed file is what counts.
            if (ParseEndCheck(TryClaim(path)) is { } taken)
            {
                claimed.Add(taken.SessionId);
            }
        }

        return claimed;
    }

    /// <summary>Renames the end check at <paramref name="path"/> to a name of this caller's, reads it and deletes it.</summary>
    /// <returns>Its bytes, or <see langword="null"/> when another caller had it first.</returns>
    private static byte[]? TryClaim(string path)
    {
        var claim = $"{path}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}.claim";
        try
        {
            File.Move(path, claim);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }

        try
        {
            return File.ReadAllBytes(claim);
        }
        finally
        {
            TryDelete(claim);
        }
    }

    private static (long At, string SessionId)? ParseEndCheck(byte[]? data)
    {
        if (data is null)
        {
            return null;
        }

        var text = Encoding.ASCII.GetString(data);
        var newline = text.IndexOf('\n', StringComparison.Ordinal);
        return newline > 0 && long.TryParse(text.AsSpan(0, newline), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var at)
            && IsSessionId(text[(newline + 1)..])
            ? (at, text[(newline + 1)..])
            : null;
    }

    /// <summary>Changes a user's index under its lock, rebuilding it first if it is damaged; returns the ids it now holds.</summary>
    private async ValueTask<HashSet<string>> UpdateUserIndexAsync(string userId, Action<HashSet<string>> update, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(userId);
        var file = UserIndexFile(userId);
        EnsurePrivateDirectory(Path.GetDirectoryName(file.Path)!);
        using (await LockStripeAsync(file.Stripe, cancellationToken).ConfigureAwait(false))
        {
            var (ids, damaged) = await ReadUserIndexAsync(file.Path, cancellationToken).ConfigureAwait(false);
            if (damaged)
            {
                await AddSessionsBoundToAsync(userId, ids, cancellationToken).ConfigureAwait(false);
                UserIndexDamaged(Path.GetFileName(file.Path), ids.Count);
            }

            var before = ids.Count;
            update(ids);
            if (ids.Count == 0)
            {
                File.Delete(file.Path);
            }
            else if (ids.Count != before || before == 0 || damaged)
            {
                var text = UserIndexHeader + "\n" + string.Join('\n', ids);
                await WriteAtomicallyAsync(file.Path, Encoding.ASCII.GetBytes(text), cancellationToken).ConfigureAwait(false);
            }

            return ids;
        }
    }

    /// <summary>
    /// Adds to <paramref name="ids"/> every session bound to <paramref name="userId"/> that has an end check. The
    /// session files hold their user but not their id (their names are its hash); the end checks hold the id, and every
    /// session stored has one from its first write until its end is reported. Files that cannot be read are passed over.
    /// </summary>
    private async ValueTask AddSessionsBoundToAsync(string userId, HashSet<string> ids, CancellationToken cancellationToken)
    {
        var directory = Path.Combine(DirectoryPath, EndsDirectory);
        foreach (var path in Directory.Exists(directory) ? Directory.EnumerateFiles(directory, "*.end") : [])
        {
            try
            {
                if (ParseEndCheck(await ReadAllBytesOrNullAsync(path, cancellationToken).ConfigureAwait(false)) is { } check
                    && (await ReadSessionAsync(SessionFile(check.SessionId), check.SessionId, cancellationToken).ConfigureAwait(false)).Record
                        is { Destroyed: false } record
                    && string.Equals(record.UserId, userId, StringComparison.Ordinal))
                {
                    ids.Add(check.SessionId);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // An end check or session file that cannot be read names no session of this user that can be served.
            }
        }
    }

    /// <summary>
    /// Reads a user index. A damaged one (emptied, its header overwritten, cut short, any line that is not a session id)
    /// gives the ids still in it and says it is damaged: <see cref="UpdateUserIndexAsync"/> rebuilds it (see
    /// <see cref="AddSessionsBoundToAsync"/>) and logs it (event 207). One of another format version is refused.
    /// </summary>
    private async ValueTask<(HashSet<string> Ids, bool Damaged)> ReadUserIndexAsync(string path, CancellationToken cancellationToken)
    {
        var data = await ReadAllBytesOrNullAsync(path, cancellationToken).ConfigureAwait(false);
        var ids = new HashSet<string>(StringComparer.Ordinal);
        if (data is null)
        {
            return (ids, false);
        }

        var lines = Encoding.ASCII.GetString(data).Split('\n');
        var first = lines[0] == UserIndexHeader ? 1 : 0;
        if (first == 0 && lines[0].StartsWith(UserIndexHeader[..^1], StringComparison.Ordinal))
        {
            throw new IOException($"The user index file '{Path.GetFileName(path)}' is of an unknown format version.");
        }

        // The writer puts one id on each line after the header and no newline after the last, so a file cut short
        // anywhere but right after an id ends in a line that is not one.
        var damaged = first == 0 || lines.Length == 1;
        foreach (var line in lines.AsSpan(first))
        {
            if (IsSessionId(line))
            {
                ids.Add(line);
            }
            else
            {
                damaged = true;
            }
        }

        return (ids, damaged);
    }

    private static bool IsSessionId(string text) =>
        text.Length == SessionKey.IdLength && SessionKey.TryParse(text + new string('A', SessionKey.SecretLength), out _);

    private StoredFile UserIndexFile(string userId)
    {
        var located = Locate(UserDomain, userId, ".user");
        return located with { Path = Path.Combine(DirectoryPath, UsersDirectory, Path.GetFileName(located.Path)) };
    }

    private string EndCheckPath(string sessionId) =>
        Path.Combine(DirectoryPath, EndsDirectory, Path.GetFileNameWithoutExtension(SessionFile(sessionId).Path) + ".end");

    /// <summary>
    /// Creates <c>.users</c> or <c>.ends</c> if it is missing; when <see cref="FileSystemDriverOptions.Durable"/>, flushes
    /// the store's directory too, whose entry the new directory is, or a power cut could take it with every file in it.
    /// </summary>
    private void EnsurePrivateDirectory(string path)
    {
        if (!Directory.Exists(path))
        {
            CreatePrivateDirectory(path);
            if (_durable)
            {
                DirectorySync.Flush(DirectoryPath);
            }
        }
    }

    [LoggerMessage(EventId = 207, Level = LogLevel.Warning,
        Message = "The user index file {FileName} was damaged; it was rebuilt from the ids still in it and the end checks of the sessions bound to its user, and lists {Count} sessions.")]
    private partial void UserIndexDamaged(string fileName, int count);
}
