using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Identity;

public sealed class FileSystemSessionIdentityTests(FileSystemDriverFixture driver) : StoredSessionIdentityTests<FileSystemDriverFixture>(driver)
{
    protected override async Task TamperWithStoredCiphertextAsync(string scope, string sessionId)
    {
        var flipped = 0;
        foreach (var file in Directory.EnumerateFiles(Driver.DirectoryOf(scope), "*", SearchOption.AllDirectories))
        {
            var bytes = await File.ReadAllBytesAsync(file);
            var here = FlipProtectedPayloads(bytes);
            if (here > 0)
            {
                await File.WriteAllBytesAsync(file, bytes);
                flipped += here;
            }
        }

        Assert.True(flipped > 0, "No encrypted value was found in the session files.");
    }
}
