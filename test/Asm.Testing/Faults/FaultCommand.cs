using System.Diagnostics;

namespace Asm.Testing.Faults;

/// <summary>Runs a command that makes or clears a file system fault (mount, chattr, mkfifo), failing with its error output.</summary>
public static class FaultCommand
{
    /// <summary>Runs <paramref name="program"/> with <paramref name="arguments"/> and waits for it.</summary>
    /// <exception cref="InvalidOperationException">The command failed (or did not start).</exception>
    public static void Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"`{program} {string.Join(' ', arguments)}` failed with code {process.ExitCode}: {error.Trim()}");
        }
    }
}
