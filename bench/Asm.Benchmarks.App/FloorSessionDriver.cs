using System.Text;
using Asm.Caching.Sessions;
using StackExchange.Redis;

namespace Asm.Benchmarks.App;

/// <summary>
/// The floor rows' storage: Asm's own session pipeline over the least a Redis session driver can do. A load is one
/// plain <c>HGETALL</c> of the session's values and profiles, a commit one plain <c>HSET</c> of what changed; nothing
/// is checked (no secret, no expiry, no corrupt record), no lock is taken (every lease is granted), nothing expires.
/// One round trip of the cheapest commands per load and per commit: no driver that asks Redis on every request, as a
/// shared store must to keep Asm's promises, does less, so a ratio this row does not reach is out of reach for Asm on
/// this machine. No store to run.
/// </summary>
internal sealed class FloorSessionDriver(string configuration) : ISessionDriver
{
    private const string Created = "c";
    // Socket reads on the thread pool, as Asm's Redis driver connects (docs/drivers.md).
    private readonly Lazy<IDatabase> _database = new(() =>
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.SocketManager = SocketManager.ThreadPool;
        return ConnectionMultiplexer.Connect(options).GetDatabase();
    });

    public async ValueTask<SessionLoadResult> LoadAsync(SessionLoadRequest request, CancellationToken cancellationToken)
    {
        var fields = await _database.Value.HashGetAllAsync(KeyOf(request.Key.Id)).ConfigureAwait(false);
        if (fields.Length == 0)
        {
            return SessionLoadResult.Of(SessionLoadStatus.Unknown);
        }

        var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var profiles = new List<string>();
        var created = request.Now;
        foreach (var field in fields)
        {
            var name = (string)field.Name!;
            if (name == Created)
            {
                created = DateTimeOffset.FromUnixTimeMilliseconds((long)field.Value);
            }
            else if (name.StartsWith("p:", StringComparison.Ordinal))
            {
                profiles.Add(name[2..]);
            }
            else
            {
                values[name[2..]] = (byte[])field.Value!;
            }
        }

        return new SessionLoadResult
        {
            Status = SessionLoadStatus.Found,
            Values = values,
            CreatedAt = created,
            Profiles = profiles,
            Lease = request.Lease is { } lease ? lease with { Fence = 1 } : null,
        };
    }

    public async ValueTask<SessionCommitStatus> CommitAsync(SessionCommitRequest request, CancellationToken cancellationToken)
    {
        var fields = new List<HashEntry>(request.Changes.Count + request.AddProfiles.Count + 1);
        if (request.CreateWithSecret is not null)
        {
            fields.Add(new HashEntry(Created, request.Now.ToUnixTimeMilliseconds()));
        }

        foreach (var (name, value) in request.Changes)
        {
            fields.Add(new HashEntry("v:" + name, value ?? []));
        }

        foreach (var profile in request.AddProfiles)
        {
            fields.Add(new HashEntry("p:" + profile, 1));
        }

        if (fields.Count > 0)
        {
            await _database.Value.HashSetAsync(KeyOf(request.SessionId), [.. fields]).ConfigureAwait(false);
        }

        return SessionCommitStatus.Committed;
    }

    public ValueTask<bool> RenewLockAsync(string sessionId, SessionLease lease, DateTimeOffset now, CancellationToken cancellationToken) =>
        ValueTask.FromResult(true);

    public ValueTask ReleaseLockAsync(string sessionId, SessionLease lease, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<SessionCommitStatus> RegenerateAsync(SessionRegenerateRequest request, CancellationToken cancellationToken) =>
        throw new NotSupportedException("The floor driver serves the benchmark's reads and writes only.");

    public ValueTask DestroyAsync(string sessionId, DateTimeOffset now, DateTimeOffset tombstoneExpiresAt, CancellationToken cancellationToken) =>
        throw new NotSupportedException("The floor driver serves the benchmark's reads and writes only.");

    public Task WaitForReleaseAsync(string sessionId, TimeSpan maxWait, CancellationToken cancellationToken) =>
        Task.Delay(maxWait, cancellationToken);

    private static RedisKey KeyOf(string sessionId) => Encoding.UTF8.GetBytes("floor:" + sessionId);
}
