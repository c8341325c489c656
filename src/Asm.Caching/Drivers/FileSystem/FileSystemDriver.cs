using Asm.Caching.Caching;
using Asm.Caching.Sessions;
using Microsoft.Extensions.Options;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>Keeps sessions and cache entries as files in one directory.</summary>
internal sealed class FileSystemDriver(IOptions<FileSystemDriverOptions> options, TimeProvider timeProvider)
    : ISessionDriver, ICacheDriver, ISweepableDriver
{
    private readonly FileSystemDriverOptions _options = options.Value;
    private readonly TimeProvider _timeProvider = timeProvider;

    public ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken) => throw new NotImplementedException(_options.Directory + _timeProvider);
    public ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken) => throw new NotImplementedException();
    public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotImplementedException();
    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) => throw new NotImplementedException();
    public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) => throw new NotImplementedException();
    public ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) => throw new NotImplementedException();
    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) => throw new NotImplementedException();
    public ValueTask<byte[]?> GetAsync(string key, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotImplementedException();
    public ValueTask SetAsync(string key, byte[] value, CacheEntryExpiration expiration, CancellationToken cancellationToken) => throw new NotImplementedException();
    public ValueTask RefreshAsync(string key, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotImplementedException();
    public ValueTask RemoveAsync(string key, CancellationToken cancellationToken) => throw new NotImplementedException();
    public ValueTask<int> SweepAsync(DateTimeOffset now, CancellationToken cancellationToken) => throw new NotImplementedException();
}
