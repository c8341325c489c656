using System.Text;
using Asm.Caching.Caching;
using Asm.Caching.Drivers.FileSystem;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Caching.Tests.Drivers.Redis;
using Asm.Testing.Redis;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Asm.Testing.Cleanup;

namespace Asm.Caching.Tests.Drivers;

/// <summary>
/// Every stored layout is kept as files under <c>Samples/</c> (written by <see cref="SampleRecords.WriteAsync"/> on the
/// drivers of that layout) and read here by today's drivers, so that a layout change can never orphan stored sessions
/// unnoticed: session file v1, cache file v1, Redis session hash v1 and Redis cache hash v1.
/// </summary>
[Collection(RedisServerGroup.Name)]
public sealed class StoredFormatSampleTests(RedisServer server) : IDisposable
{
    private readonly string _directory = TestDirectories.Create("asm-samples-");
    private readonly RedisTestDrivers _redis = new(server.EndPoint);

    private FileSystemDriver? _files;

    private FileSystemDriver Files => _files ??= new FileSystemDriver(
        Options.Create(new FileSystemDriverOptions { Directory = _directory }), TimeProvider.System, NullLogger<FileSystemDriver>.Instance);

    [Fact]
    public async Task SessionFileV1_FileSystemDriver_LoadsEveryField()
    {
        await File.WriteAllBytesAsync(Files.GetSessionFilePath(SampleRecords.LiveId), ReadSample("session-file-v1.bin"));

        await AssertLiveSampleAsync(Files);
    }

    [Fact]
    public async Task SessionFileV1Tombstone_FileSystemDriver_IsDestroyedAndRefusesCreation()
    {
        await File.WriteAllBytesAsync(Files.GetSessionFilePath(SampleRecords.DestroyedId), ReadSample("session-file-v1-tombstone.bin"));

        await AssertTombstoneSampleAsync(Files);
    }

    [Fact]
    public async Task CacheFileV1_FileSystemDriver_ReadsEntryAndItsExpiry()
    {
        await File.WriteAllBytesAsync(Files.GetCacheFilePath(SampleRecords.CacheKey), ReadSample("cache-file-v1.bin"));

        await AssertCacheSampleAsync(Files);
    }

    [Fact]
    public async Task RedisSessionHashV1_RedisDriver_LoadsEveryField()
    {
        var driver = _redis.CreateWithLeasesOnCallerClock();
        await RestoreHashAsync(driver.SessionKeyOf(SampleRecords.LiveId), "redis-session-v1.txt");

        await AssertLiveSampleAsync(driver);
    }

    [Fact]
    public async Task RedisSessionHashV1Tombstone_RedisDriver_IsDestroyedAndRefusesCreation()
    {
        var driver = _redis.CreateWithLeasesOnCallerClock();
        await RestoreHashAsync(driver.SessionKeyOf(SampleRecords.DestroyedId), "redis-session-v1-tombstone.txt");

        await AssertTombstoneSampleAsync(driver);
    }

    [Fact]
    public async Task RedisCacheHashV1_RedisDriver_ReadsEntryAndItsExpiry()
    {
        var driver = _redis.CreateWithLeasesOnCallerClock();
        await RestoreHashAsync(driver.CacheKeyOf(SampleRecords.CacheKey), "redis-cache-v1.txt");

        await AssertCacheSampleAsync(driver);
    }

    [Theory]
    [InlineData("session-file-v1.bin")]
    [InlineData("session-file-v1-tombstone.bin")]
    public void SessionFileFormat_V1Sample_WritesItBackByteForByte(string sample)
    {
        Assert.True(SessionFileFormat.TryDeserialize(ReadSample(sample), out var record));

        Assert.Equal(ReadSample(sample), SessionFileFormat.Serialize(record));
    }

    [Fact]
    public void CacheFileFormat_V1Sample_WritesItBackByteForByte()
    {
        Assert.True(CacheFileFormat.TryDeserialize(ReadSample("cache-file-v1.bin"), out var entry));

        Assert.Equal(ReadSample("cache-file-v1.bin"), CacheFileFormat.Serialize(entry));
    }

    /// <summary>
    /// The same operations still write the v1 hashes: every field and value, except the idle expiry and purge-at of the
    /// live sample, which the slide rule decides (a load slides only past a threshold), not the layout.
    /// </summary>
    [Fact]
    public async Task RedisDriver_SampleOperations_WriteTheV1SampleHashes()
    {
        var driver = _redis.CreateWithLeasesOnCallerClock();
        await SampleRecords.WriteAsync(driver);
        await driver.SetAsync(SampleRecords.CacheKey, SampleRecords.CacheValue, SampleRecords.CacheExpiration, CancellationToken.None);

        var live = await ReadHashAsync(driver.SessionKeyOf(SampleRecords.LiveId));
        var expected = ReadHashSample("redis-session-v1.txt");
        foreach (var slid in (string[])["ie", "pa"])
        {
            Assert.True(long.TryParse(Encoding.UTF8.GetString(Convert.FromBase64String(live[slid])), out _));
            live.Remove(slid);
            expected.Remove(slid);
        }

        Assert.Equal(expected, live);
        Assert.Equal(ReadHashSample("redis-session-v1-tombstone.txt"), await ReadHashAsync(driver.SessionKeyOf(SampleRecords.DestroyedId)));
        Assert.Equal(ReadHashSample("redis-cache-v1.txt"), await ReadHashAsync(driver.CacheKeyOf(SampleRecords.CacheKey)));
    }

    public void Dispose()
    {
        _redis.Dispose();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>What the live sample holds, read back as a request 1 s after it was locked would.</summary>
    private static async Task AssertLiveSampleAsync(ISessionDriver driver)
    {
        var now = SampleRecords.T0.AddSeconds(4);
        var loaded = await LoadAsync(driver, SampleRecords.Current, now);
        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal(SampleRecords.T0, loaded.CreatedAt);
        Assert.Equal(["profile-a", "profile-b"], loaded.Profiles);
        Assert.Equal(SampleRecords.Values.Keys.Order(StringComparer.Ordinal), loaded.Values.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, value) in SampleRecords.Values)
        {
            Assert.Equal(value, loaded.Values[name]);
        }

        var zombie = await LoadAsync(driver, SampleRecords.Old, now);
        Assert.Equal(SessionLoadStatus.Zombie, zombie.Status);
        Assert.Equal(SampleRecords.CurrentSecret, zombie.CurrentSecret);

        Assert.Equal(SessionLoadStatus.LockBusy, (await LoadAsync(driver, SampleRecords.Current, now, new SessionLease("other-token", TimeSpan.FromSeconds(30)))).Status);
        var held = new SessionLease(SampleRecords.LeaseToken, TimeSpan.FromSeconds(30), Fence: 1);
        Assert.Equal(SessionCommitStatus.Committed, await driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = SampleRecords.LiveId, Now = now, IdleTimeout = SampleRecords.Idle, Lease = held, ReleaseLock = true,
                Changes = new Dictionary<string, byte[]?> { ["name"] = "Grace"u8.ToArray() },
            },
            CancellationToken.None));

        var next = await LoadAsync(driver, SampleRecords.Current, now, new SessionLease("other-token", TimeSpan.FromSeconds(30)));
        Assert.Equal(SessionLoadStatus.Found, next.Status);
        Assert.Equal(2, next.Lease?.Fence);
        Assert.Equal("Grace"u8.ToArray(), next.Values["name"]);

        Assert.Equal(SessionLoadStatus.ZombieExpired, (await LoadAsync(driver, SampleRecords.Old, SampleRecords.ZombieExpiresAt)).Status);
        Assert.Equal(SessionLoadStatus.Expired, (await LoadAsync(driver, SampleRecords.Current, SampleRecords.AbsoluteExpiresAt)).Status);
    }

    private static async Task AssertTombstoneSampleAsync(ISessionDriver driver)
    {
        var now = SampleRecords.T0.AddSeconds(6);
        var key = SessionKey.Create(SampleRecords.DestroyedId, SampleRecords.CurrentSecret);
        Assert.Equal(SessionLoadStatus.Destroyed, (await LoadAsync(driver, key, now)).Status);
        Assert.Equal(SessionCommitStatus.NotFound, await driver.CommitAsync(
            new SessionCommitRequest { SessionId = key.Id, CreateWithSecret = key.Secret, Now = now, IdleTimeout = SampleRecords.Idle },
            CancellationToken.None));
    }

    private static async Task AssertCacheSampleAsync(ICacheDriver cache)
    {
        Assert.Equal(SampleRecords.CacheValue, await cache.GetAsync(SampleRecords.CacheKey, SampleRecords.T0.AddMinutes(4), CancellationToken.None));
        Assert.Null(await cache.GetAsync(SampleRecords.CacheKey, SampleRecords.T0.AddMinutes(10), CancellationToken.None));
    }

    private static Task<SessionLoadResult> LoadAsync(ISessionDriver driver, SessionKey key, DateTimeOffset now, SessionLease? lease = null) =>
        driver.LoadAsync(new SessionLoadRequest { Key = key, Now = now, IdleTimeout = SampleRecords.Idle, Lease = lease }, CancellationToken.None).AsTask();

    private static byte[] ReadSample(string name) => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Samples", name));

    /// <summary>A Redis hash sample: one field a line, its name, a tab and the base64 of its value; '#' lines are comments.</summary>
    private static SortedDictionary<string, string> ReadHashSample(string name)
    {
        var fields = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Samples", name), Encoding.UTF8))
        {
            if (line.Length > 0 && line[0] != '#')
            {
                var tab = line.IndexOf('\t', StringComparison.Ordinal);
                fields.Add(line[..tab], line[(tab + 1)..]);
            }
        }

        return fields;
    }

    private async Task RestoreHashAsync(object key, string sample)
    {
        foreach (var (field, value) in ReadHashSample(sample))
        {
            await server.ExecuteAsync("HSET", key, Encoding.UTF8.GetBytes(field), Convert.FromBase64String(value));
        }
    }

    private async Task<SortedDictionary<string, string>> ReadHashAsync(object key)
    {
        var raw = (object?[])(await server.ExecuteAsync("HGETALL", key))!;
        var fields = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < raw.Length; i += 2)
        {
            fields.Add(Encoding.UTF8.GetString((byte[])raw[i]!), Convert.ToBase64String((byte[])raw[i + 1]!));
        }

        return fields;
    }
}
