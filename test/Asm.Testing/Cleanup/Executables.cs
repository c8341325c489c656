namespace Asm.Testing.Cleanup;

/// <summary>Finds programs the tests run on PATH, or fails saying how to install them.</summary>
public static class Executables
{
    /// <summary>The full path of <paramref name="name"/> on PATH.</summary>
    /// <param name="name">The program's file name.</param>
    /// <param name="installHint">The command that installs it, for the failure message.</param>
    /// <returns>The full path.</returns>
    /// <exception cref="InvalidOperationException">The program is not on PATH.</exception>
    public static string Find(string name, string installHint)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var directory in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"{name} is not installed (it is not on PATH): install it with `{installHint}`.");
    }
}
