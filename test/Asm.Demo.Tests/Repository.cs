namespace Asm.Demo.Tests;

/// <summary>Where the repository is: the nearest folder above the tests that holds Asm.sln.</summary>
public static class Repository
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        var start = AppContext.BaseDirectory;
        for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Asm.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("Asm.sln was not found above " + start);
    }
}
