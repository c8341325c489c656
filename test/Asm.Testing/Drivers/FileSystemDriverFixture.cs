using Asm.Testing.Cleanup;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.Testing.Drivers;

/// <summary>The filesystem driver on a temporary directory per scope, removed when the fixture is disposed.</summary>
public sealed class FileSystemDriverFixture : IDriverFixture, IDisposable
{
    private readonly string _root = TestDirectories.Create("asm-fs-");

    public string Name => "filesystem";

    public bool IsShared => true;

    public string DirectoryOf(string scope) => Path.Combine(_root, scope);

    public void Use(IAsmStorageBuilder builder, string scope) => builder.UseFileSystemDriver(DirectoryOf(scope));

    public IReadOnlyList<string> ChildArguments(string scope) => ["--driver", "filesystem", "--directory", DirectoryOf(scope)];

    public async Task CorruptSessionAsync(string scope, string sessionId)
    {
        // Every file of the scope whose content is a session record gets its bytes after the header scrambled.
        foreach (var file in Directory.EnumerateFiles(DirectoryOf(scope), "*", SearchOption.TopDirectoryOnly))
        {
            var bytes = await File.ReadAllBytesAsync(file);
            for (var i = bytes.Length / 2; i < bytes.Length; i++)
            {
                bytes[i] ^= 0x5A;
            }

            bytes[0] = 0xEE;
            await File.WriteAllBytesAsync(file, bytes);
        }
    }

    public async Task<byte[]> DumpAsync(string scope)
    {
        using var all = new MemoryStream();
        foreach (var file in Directory.EnumerateFiles(DirectoryOf(scope), "*", SearchOption.AllDirectories))
        {
            await all.WriteAsync(await File.ReadAllBytesAsync(file));
        }

        return all.ToArray();
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
