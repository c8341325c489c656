using System.Diagnostics;
using Asm.Testing.Cleanup;

namespace Asm.Testing.Http;

/// <summary>
/// The test app (test/Asm.TestApp) running as a separate process on a free loopback port: a second server on the
/// same storage, or a lock holder to kill. When the tests run on StackExchange.Redis 3.x (the Redis3 test line), the
/// child is the same app built on 3.x (test/Asm.TestApp.Redis3), so that both processes are on the line under test.
/// </summary>
public sealed class ChildApp : IAsyncDisposable
{
    private readonly Process _process;

    private ChildApp(Process process, Uri address)
    {
        _process = process;
        Address = address;
    }

    public Uri Address { get; }

    /// <summary>The process's id, to watch it from outside (strace).</summary>
    public int ProcessId => _process.Id;

    public static async Task<ChildApp> StartAsync(IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(AppPath());
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = OwnedProcess.Start(start);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith("LISTENING ", StringComparison.Ordinal))
            {
                return new ChildApp(process, new Uri(line["LISTENING ".Length..]));
            }
        }

        var error = await process.StandardError.ReadToEndAsync(timeout.Token);
        throw new InvalidOperationException($"The test app exited before listening: {error}");
    }

    /// <summary>Kills the process at once, as a crash would: no commit, no unlock.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Kill();
        }

        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    private static string AppPath()
    {
        // The test app is built next to this assembly's build, in the same configuration.
        var here = Path.GetDirectoryName(typeof(ChildApp).Assembly.Location)!;
        var configuration = new DirectoryInfo(here).Parent!.Name;
        var root = new DirectoryInfo(here);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Asm.sln")))
        {
            root = root.Parent;
        }

        var app = typeof(StackExchange.Redis.ConnectionMultiplexer).Assembly.GetName().Version!.Major >= 3 ? "Asm.TestApp.Redis3" : "Asm.TestApp";
        var path = Path.Combine(root?.FullName ?? throw new InvalidOperationException("Asm.sln not found above " + here),
            "test", app, "bin", configuration, "net10.0", app + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException("Build the solution first: the test app is missing.", path);
    }
}
