using System.Net;
using Asm.Testing.Drivers;
using Asm.Testing.Http;

namespace Asm.SessionAdapter.Tests.Hostile;

public sealed class InMemoryHostileInputTests(InMemoryDriverFixture driver) : HostileInputTests<InMemoryDriverFixture>(driver);

public sealed class FileSystemHostileInputTests(FileSystemDriverFixture driver) : HostileInputTests<FileSystemDriverFixture>(driver)
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SessionFileDamagedAtEveryByte_NeverAnErrorAndNoFileOutsideTheDirectory(bool encryptAtRest)
    {
        var scope = Guid.NewGuid().ToString("N");
        await using var app = await SessionApp.StartAsync(b => Driver.Use(b, scope), Map, o => o.EncryptAtRest = encryptAtRest);
        var client = app.CreateClient();
        (await client.PostAsync("/write", null)).EnsureSuccessStatusCode();
        var directory = Driver.DirectoryOf(scope);
        var file = Directory.GetFiles(directory, "*.session").Single();
        var original = await File.ReadAllBytesAsync(file);
        var random = new Random(15);

        for (var i = 0; i < original.Length; i++)
        {
            foreach (var damage in new[] { (byte)0xFF, (byte)random.Next(1, 256) })
            {
                var bytes = original.ToArray();
                bytes[i] ^= damage;
                await File.WriteAllBytesAsync(file, bytes);

                // Encrypted values are authenticated: the session as it was or a fresh one. Plain values carry no
                // checksum, so a flipped value byte reads as another value; the rest is still never an error.
                var read = await ReadAsync(client);
                if (encryptAtRest)
                {
                    Assert.Contains(read, new[] { "written", "" });
                }
            }
        }

        Assert.All(Directory.GetFileSystemEntries(Path.GetDirectoryName(directory)!), entry =>
            Assert.Matches("^[0-9a-f]{32}$", Path.GetFileName(entry)));
    }
}

public sealed class RedisHostileInputTests(RedisDriverFixture driver) : HostileInputTests<RedisDriverFixture>(driver)
{
    [Fact]
    public async Task SessionHashDamagedInEveryField_NeverAnError()
    {
        var scope = Guid.NewGuid().ToString("N");
        await using var app = await SessionApp.StartAsync(b => Driver.Use(b, scope), Map);
        var client = app.CreateClient();
        (await client.PostAsync("/write", null)).EnsureSuccessStatusCode();
        var server = Driver.Server;
        var key = Assert.Single((object?[])(await server.ExecuteAsync("KEYS", $"{scope}:s:*"))!) is byte[] k ? System.Text.Encoding.UTF8.GetString(k) : throw new InvalidOperationException();
        var original = (object?[])(await server.ExecuteAsync("HGETALL", key))!;
        var fields = original.Where((_, i) => i % 2 == 0).Cast<byte[]>().ToList();
        var random = new Random(15);
        var damages = new List<byte[]?> { null, Array.Empty<byte>(), "x"u8.ToArray(), "-1"u8.ToArray(), "0"u8.ToArray(), "99999999999999999999"u8.ToArray() };

        foreach (var field in fields)
        {
            foreach (var damage in damages.Append(RandomBytes(random)))
            {
                await server.ExecuteAsync(damage is null ? new object[] { "HDEL", key, field } : new object[] { "HSET", key, field, damage });

                await ReadAsync(client);

                await server.ExecuteAsync("DEL", key);
                await server.ExecuteAsync([(object)"HSET", key, .. original.Cast<object>()]);
            }
        }
    }

    private static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(1, 64)];
        random.NextBytes(bytes);
        return bytes;
    }
}
