using System.Collections.Concurrent;
using System.Diagnostics;

namespace Asm.Testing.Cleanup;

/// <summary>
/// Starts processes that die with the test process, even when it is killed with SIGKILL: each runs under
/// <c>setpriv --pdeathsig KILL</c>, which sets <c>prctl(PR_SET_PDEATHSIG, SIGKILL)</c> and then execs the program
/// (same process id, so <see cref="Process.Kill(bool)"/> and the exit code work as before).
/// </summary>
/// <remarks>
/// Linux sends the parent-death signal when the <em>thread</em> that forked the child ends, not the process. A
/// thread-pool thread may retire at any time, so every start is forked from one dedicated thread that lives as long
/// as the test process.
/// </remarks>
public static class OwnedProcess
{
    private const string InstallHint = "apt-get install -y util-linux";
    private static readonly BlockingCollection<Action> Starts = CreateLauncher();

    /// <summary>Starts <paramref name="start"/> as a process owned by this one.</summary>
    /// <returns>The started process.</returns>
    public static Process Start(ProcessStartInfo start)
    {
        ArgumentNullException.ThrowIfNull(start);
        var process = new Process { StartInfo = start };
        Start(process);
        return process;
    }

    /// <summary>
    /// Starts <paramref name="process"/> (set up by the caller: start info, events) as a process owned by this one.
    /// Its <see cref="Process.StartInfo"/> is rewritten to run the program under <c>setpriv</c>.
    /// </summary>
    public static void Start(Process process)
    {
        ArgumentNullException.ThrowIfNull(process);
        var start = process.StartInfo;
        var setpriv = Executables.Find("setpriv", InstallHint);
        string[] arguments = ["--pdeathsig", "KILL", "--", start.FileName, .. start.ArgumentList];
        start.FileName = setpriv;
        start.ArgumentList.Clear();
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Starts.Add(() =>
        {
            try
            {
                process.Start();
                started.SetResult();
            }
            catch (Exception ex)
            {
                started.SetException(ex);
            }
        });
        started.Task.GetAwaiter().GetResult();
    }

    private static BlockingCollection<Action> CreateLauncher()
    {
        var starts = new BlockingCollection<Action>();
        var thread = new Thread(() =>
        {
            foreach (var start in starts.GetConsumingEnumerable())
            {
                start();
            }
        })
        {
            IsBackground = true,
            Name = "Asm.Testing process launcher",
        };
        thread.Start();
        return starts;
    }
}
