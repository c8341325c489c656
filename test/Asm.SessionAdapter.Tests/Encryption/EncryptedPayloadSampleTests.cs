using System.Buffers.Binary;
using System.Text;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Encryption;
using Microsoft.AspNetCore.DataProtection;
using Asm.Testing.Cleanup;

namespace Asm.SessionAdapter.Tests.Encryption;

/// <summary>
/// The encryption payload v1, kept under <c>Samples/</c>: values and a profile sealed by
/// <see cref="EncryptingSessionDriver"/> with the test key ring in <c>Samples/keys</c> (a key made for these samples,
/// protecting nothing else). Today's driver must still open them, and must still seal in the same plain layout.
/// </summary>
public sealed class EncryptedPayloadSampleTests : IDisposable
{
    private const string SessionId = "sampleSession1";
    private static readonly SessionKey Key = SessionKey.Create(SessionId, "currentSecret000000000");
    private static readonly DateTimeOffset Now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly DirectoryInfo _keys = new(TestDirectories.Create("asm-sample-keys-"));
    private readonly IDataProtectionProvider _provider;

    public EncryptedPayloadSampleTests()
    {
        // A copy, so that the key ring under test/ is never written to.
        foreach (var file in Directory.EnumerateFiles(Path.Combine(AppContext.BaseDirectory, "Samples", "keys")))
        {
            File.Copy(file, Path.Combine(_keys.FullName, Path.GetFileName(file)));
        }

        _provider = DataProtectionProvider.Create(_keys, b => b.SetApplicationName("Asm.Samples").DisableAutomaticKeyGeneration());
    }

    [Fact]
    public async Task EncryptedPayloadV1_EncryptingDriver_OpensValuesAndProfiles()
    {
        var (values, profiles) = ReadSample();
        var inner = new InMemoryDriver(TimeProvider.System);
        Assert.Equal(SessionCommitStatus.Committed, await inner.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = SessionId, CreateWithSecret = Key.Secret, Now = Now, IdleTimeout = TimeSpan.FromMinutes(20),
                Changes = values, AddProfiles = profiles,
            },
            CancellationToken.None));

        var loaded = await new EncryptingSessionDriver(inner, _provider).LoadAsync(
            new SessionLoadRequest { Key = Key, Now = Now, IdleTimeout = TimeSpan.FromMinutes(20) }, CancellationToken.None);

        Assert.Equal(SessionLoadStatus.Found, loaded.Status);
        Assert.Equal("Ada"u8.ToArray(), loaded.Values["name"]);
        Assert.Equal([0, 255, 1], loaded.Values["ключ"]);
        Assert.Equal(2, loaded.Values.Count);
        Assert.Equal(["profile-a"], loaded.Profiles);
    }

    [Fact]
    public async Task EncryptingDriver_Commit_SealsTheV1PlainLayout()
    {
        var inner = new InMemoryDriver(TimeProvider.System);
        await new EncryptingSessionDriver(inner, _provider).CommitAsync(
            new SessionCommitRequest
            {
                SessionId = SessionId, CreateWithSecret = Key.Secret, Now = Now, IdleTimeout = TimeSpan.FromMinutes(20),
                Changes = new Dictionary<string, byte[]?> { ["ключ"] = [0, 255, 1] }, AddProfiles = ["profile-a"],
            },
            CancellationToken.None);
        var stored = await inner.LoadAsync(new SessionLoadRequest { Key = Key, Now = Now, IdleTimeout = TimeSpan.FromMinutes(20) }, CancellationToken.None);
        var protector = _provider.CreateProtector("Asm.SessionAdapter.EncryptAtRest").CreateProtector(SessionId);

        // [1: version][4: name byte count, big-endian][name UTF-8][value]; a profile is [1: version][profile UTF-8].
        var name = Encoding.UTF8.GetBytes("ключ");
        var length = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, name.Length);
        Assert.Equal([1, .. length, .. name, 0, 255, 1], protector.Unprotect(stored.Values["ключ"]));
        Assert.Equal([1, .. "profile-a"u8.ToArray()], protector.Unprotect(Convert.FromBase64String(Assert.Single(stored.Profiles))));
    }

    public void Dispose() => _keys.Delete(recursive: true);

    private static (Dictionary<string, byte[]?> Values, List<string> Profiles) ReadSample()
    {
        var values = new Dictionary<string, byte[]?>(StringComparer.Ordinal);
        var profiles = new List<string>();
        foreach (var line in File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Samples", "encrypted-payload-v1.txt"), Encoding.UTF8))
        {
            var parts = line.Split('\t');
            switch (parts[0])
            {
                case "value":
                    values[parts[1]] = Convert.FromBase64String(parts[2]);
                    break;
                case "profile":
                    profiles.Add(parts[2]);
                    break;
            }
        }

        return (values, profiles);
    }
}
