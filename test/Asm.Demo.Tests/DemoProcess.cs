using System.Diagnostics;
using System.Text;
using Asm.Testing.Cleanup;

namespace Asm.Demo.Tests;

/// <summary>
/// The built demo (samples/Asm.Demo) running as its own process, started as a newcomer starts it but on a free
/// loopback port and with a session folder of its own.
/// </summary>
public sealed class DemoProcess : IAsyncDisposable
{
    private const string ListeningLine = "Asm demo listening on ";

    private readonly Process _process;
    private readonly StringBuilder _output;
    private readonly string _directory;

    private DemoProcess(Process process, StringBuilder output, string directory, Uri address)
    {
        _process = process;
        _output = output;
        _directory = directory;
        Address = address;
    }

    /// <summary>The address the demo printed as the one it listens on.</summary>
    public Uri Address { get; }

    /// <summary>Everything the demo wrote so far, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static async Task<DemoProcess> StartAsync()
    {
        var directory = TestDirectories.Create("asm-demo-test-");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        start.ArgumentList.Add(DemoPath());
        start.ArgumentList.Add("--port");
        start.ArgumentList.Add("0");
        start.ArgumentList.Add("--sessions");
        start.ArgumentList.Add(Path.Combine(directory, ".asm-demo-sessions"));
        foreach (var inherited in new[] { "ASM_DEMO_REDIS", "ASPNETCORE_URLS", "DOTNET_URLS", "ASPNETCORE_HTTP_PORTS" })
        {
            start.Environment.Remove(inherited);
        }

        var output = new StringBuilder();
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        void Collect(object sender, DataReceivedEventArgs e)
        {
            if (e.Data is not { } line)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(line);
            }

            if (line.StartsWith(ListeningLine, StringComparison.Ordinal))
            {
                listening.TrySetResult(new Uri(line[ListeningLine.Length..]));
            }
        }

        process.OutputDataReceived += Collect;
        process.ErrorDataReceived += Collect;
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException($"The demo exited before listening:\n{output}"));
        OwnedProcess.Start(process);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var address = await listening.Task.WaitAsync(TimeSpan.FromSeconds(30));
            return new DemoProcess(process, output, directory, address);
        }
        catch
        {
            await StopAsync(process);
            TestDirectories.Delete(directory);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(_process);
        TestDirectories.Delete(_directory);
    }

    private static async Task StopAsync(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
    }

    private static string DemoPath()
    {
        // The demo is built (a project reference) in the configuration of this assembly's build.
        var here = Path.GetDirectoryName(typeof(DemoProcess).Assembly.Location)!;
        var configuration = new DirectoryInfo(here).Parent!.Name;
        var path = Path.Combine(Repository.Root, "samples", "Asm.Demo", "bin", configuration, "net10.0", "Asm.Demo.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException("Build the solution first: the demo is missing.", path);
    }
}
