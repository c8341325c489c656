using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Asm.Caching.Drivers.FileSystem;
using Asm.Caching.Sessions;
using Asm.Testing.Cleanup;
using Asm.Testing.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter.Tests.Failures;

/// <summary>
/// <c>FileSystemDriverOptions.Durable</c> as the kernel sees it: the test app runs as its own process, strace records
/// its renames, new directories, directory opens and fsyncs, and every name the store gains must be flushed to disk
/// in the directory that holds it. A power cut cannot be staged here; what survives one is what was fsynced.
/// </summary>
public sealed partial class DurableFileSystemTests : IDisposable
{
    private readonly string _keys = TestDirectories.Create("asm-keys-");
    private readonly string _root = TestDirectories.Create("asm-durable-");

    private string Store => Path.Combine(_root, "sessions");

    [Fact]
    public async Task Durable_EveryRenameAndNewDirectory_IsFlushedInTheDirectoryThatHoldsIt()
    {
        await using var app = await ChildApp.StartAsync(
            ["--keys", _keys, "--driver", "filesystem", "--directory", Store, "--durable", "true"]);
        var trace = Path.Combine(_root, "strace.txt");
        using var strace = await AttachAsync(app.ProcessId, trace);

        // A new session (its file and its end check in .ends), bound to a user (the user's index in .users, a new key).
        using var client = new HttpClient { BaseAddress = app.Address };
        var created = await client.PostAsync("/inc", null);
        Assert.Equal(HttpStatusCode.OK, created.StatusCode);
        using var login = new HttpRequestMessage(HttpMethod.Post, "/login?user=alice");
        login.Headers.Add("Cookie", string.Join("; ", created.Headers.GetValues("Set-Cookie").Select(c => c.Split(';')[0])));
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(login)).StatusCode);

        // strace ends, its record complete, once the process it follows has gone.
        app.Kill();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            await strace.WaitForExitAsync(timeout.Token);
        }

        var calls = ReadCalls(trace);
        var named = calls.Where(c => c.Name is "rename" or "renameat" or "renameat2" or "mkdir" or "mkdirat" && c.Result == 0
            && c.Path.StartsWith(Store + "/", StringComparison.Ordinal) && !c.Path.Contains("/.locks", StringComparison.Ordinal)).ToList();
        var places = named.Select(c => Path.GetDirectoryName(c.Path)).ToHashSet();
        Assert.Superset(new HashSet<string?> { Store, Path.Combine(Store, ".users"), Path.Combine(Store, ".ends") }, places);
        Assert.Contains(named, c => c.Name.StartsWith("mkdir", StringComparison.Ordinal) && c.Path.EndsWith("/.users", StringComparison.Ordinal));

        var unflushed = named.Where(c => !FlushedAfter(calls, c)).Select(c => $"{c.Name} {c.Path}").ToList();
        Assert.True(unflushed.Count == 0, "Not followed by an fsync of the directory holding it:\n" + string.Join('\n', unflushed));
    }

    /// <summary>
    /// A destroy whose tombstone ends at once (how a move takes back the copy it stored when it cannot end the previous
    /// one) deletes the session file: the deletion is flushed in the directory, or after a power cut the copy taken back
    /// could be there again, and the session usable through both drivers. Traced in this process.
    /// </summary>
    [Fact]
    public async Task Durable_DestroyThatLeavesNoRecord_FlushesTheDeletionInTheDirectory()
    {
        var driver = new FileSystemDriver(
            Options.Create(new FileSystemDriverOptions { Directory = Store, Durable = true }), TimeProvider.System, NullLogger<FileSystemDriver>.Instance);
        var key = SessionKey.New();
        var now = TimeProvider.System.GetUtcNow();
        Assert.Equal(
            SessionCommitStatus.Committed,
            await driver.CommitAsync(
                new SessionCommitRequest { SessionId = key.Id, Now = now, IdleTimeout = TimeSpan.FromMinutes(20), CreateWithSecret = key.Secret },
                CancellationToken.None));
        var file = driver.GetSessionFilePath(key.Id);
        var trace = Path.Combine(_root, "strace.txt");
        using (var strace = await AttachAsync(Environment.ProcessId, trace, "unlink,unlinkat"))
        {
            await driver.DestroyAsync(key.Id, now, now, CancellationToken.None);

            // strace detaches on SIGINT, its record complete.
            using (var stop = Process.Start("kill", ["-INT", strace.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await stop.WaitForExitAsync();
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await strace.WaitForExitAsync(timeout.Token);
        }

        Assert.False(File.Exists(file));
        var calls = ReadCalls(trace);
        var deleted = Assert.Single(calls, c => c.Name is "unlink" or "unlinkat" && c.Path == file && c.Result == 0);
        Assert.True(FlushedAfter(calls, deleted), "The deletion of the session file was not followed by an fsync of its directory.");
    }

    public void Dispose()
    {
        TestDirectories.Delete(_root);
        TestDirectories.Delete(_keys);
    }

    /// <summary>Whether the thread that made <paramref name="entry"/> then opened its directory and fsynced it.</summary>
    private static bool FlushedAfter(List<Call> calls, Call entry)
    {
        var directory = Path.GetDirectoryName(entry.Path);
        var opened = calls.FirstOrDefault(c => c.Index > entry.Index && c.Thread == entry.Thread && c.Name is "open" or "openat"
            && c.Path == directory && c.Result >= 0);
        return opened is not null
            && calls.Any(c => c.Index > opened.Index && c.Thread == entry.Thread && c.Name == "fsync" && c.Fd == opened.Result && c.Result == 0);
    }

    /// <summary>Starts strace on every thread of <paramref name="pid"/>, and returns once all of them are traced.</summary>
    private static async Task<Process> AttachAsync(int pid, string output, string? moreCalls = null)
    {
        var start = new ProcessStartInfo(Executables.Find("strace", "apt-get install -y strace"))
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["-f", "-qq", "-s", "4096", "-e", "trace=open,openat,fsync,rename,renameat,renameat2,mkdir,mkdirat" + (moreCalls is null ? "" : "," + moreCalls),
            "-o", output, "-p", pid.ToString(CultureInfo.InvariantCulture)])
        {
            start.ArgumentList.Add(argument);
        }

        var strace = OwnedProcess.Start(start);
        var deadline = Stopwatch.StartNew();
        while (!AllThreadsTraced(pid))
        {
            if (strace.HasExited)
            {
                throw new InvalidOperationException($"strace could not attach to the test app: {await strace.StandardError.ReadToEndAsync()}");
            }

            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), "strace did not attach to every thread of the test app within 60 s.");
            await Task.Delay(50);
        }

        return strace;
    }

    private static bool AllThreadsTraced(int pid) =>
        Directory.EnumerateDirectories($"/proc/{pid}/task").All(task =>
        {
            try
            {
                return File.ReadLines(Path.Combine(task, "status"))
                    .Any(line => line.StartsWith("TracerPid:", StringComparison.Ordinal) && line.Split(':')[1].Trim() != "0");
            }
            catch (IOException)
            {
                return true; // The thread ended.
            }
        });

    /// <summary>Reads strace's record: one call a line, a call another thread interrupted joined with its resumption.</summary>
    private static List<Call> ReadCalls(string path)
    {
        var calls = new List<Call>();
        var unfinished = new Dictionary<int, string>();
        foreach (var line in File.ReadLines(path))
        {
            var match = LinePattern().Match(line);
            if (!match.Success)
            {
                continue;
            }

            var thread = int.Parse(match.Groups["thread"].Value, CultureInfo.InvariantCulture);
            var text = match.Groups["text"].Value;
            if (text.EndsWith(" <unfinished ...>", StringComparison.Ordinal))
            {
                unfinished[thread] = text[..^" <unfinished ...>".Length];
                continue;
            }

            if (ResumedPattern().Match(text) is { Success: true } resumed && unfinished.Remove(thread, out var head))
            {
                text = head + resumed.Groups["rest"].Value;
            }

            if (CallPattern().Match(text) is not { Success: true } call)
            {
                continue;
            }

            var arguments = call.Groups["arguments"].Value;
            var strings = StringPattern().Matches(arguments).Select(m => Regex.Unescape(m.Groups[1].Value)).ToList();
            var name = call.Groups["name"].Value;
            calls.Add(new Call(
                calls.Count,
                thread,
                name,
                // A rename's place is its target, the second path; every other call here names one path at most.
                name.StartsWith("rename", StringComparison.Ordinal) ? strings.ElementAtOrDefault(1) ?? "" : strings.FirstOrDefault() ?? "",
                name == "fsync" && int.TryParse(arguments, CultureInfo.InvariantCulture, out var fd) ? fd : -1,
                long.Parse(call.Groups["result"].Value, CultureInfo.InvariantCulture)));
        }

        return calls;
    }

    [GeneratedRegex(@"^(?<thread>\d+)\s+(?<text>.*)$")]
    private static partial Regex LinePattern();

    [GeneratedRegex(@"^<\.\.\. \w+ resumed>(?<rest>.*)$")]
    private static partial Regex ResumedPattern();

    [GeneratedRegex(@"^(?<name>\w+)\((?<arguments>.*)\)\s+=\s+(?<result>-?\d+)")]
    private static partial Regex CallPattern();

    [GeneratedRegex(@"""((?:[^""\\]|\\.)*)""")]
    private static partial Regex StringPattern();

    private sealed record Call(int Index, int Thread, string Name, string Path, int Fd, long Result);
}
