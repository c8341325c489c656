using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Asm.Testing.Cleanup;
using Xunit;

namespace Asm.Testing.Redis;

/// <summary>
/// A real <c>redis-server</c> on a free loopback port, with no persistence and a directory of its own. It can be
/// stopped (killed, as in a crash) and started again on the same port, for outage tests. Usable as an xunit
/// fixture: <see cref="InitializeAsync"/> starts it, disposal kills it and deletes its directory.
/// </summary>
public sealed class RedisServer : IAsyncLifetime, IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);

    private readonly bool _clusterNode;
    private readonly Lock _gate = new();
    private Process? _process;
    private bool _disposed;

    /// <summary>A standalone server; set <see cref="ExtraArguments"/> to change its settings.</summary>
    public RedisServer()
        : this(clusterNode: false)
    {
    }

    internal RedisServer(bool clusterNode)
    {
        _clusterNode = clusterNode;
        Directory = TestDirectories.Create("asm-redis-");
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
    }

    /// <summary>
    /// Arguments appended to the command line, which override the defaults (for example
    /// <c>["--appendonly", "yes"]</c> for a server whose data survives a kill).
    /// </summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>
    /// When set, the process is a <c>redis-sentinel</c> (Debian's package of that name) with these lines of its
    /// configuration, for example <c>["sentinel monitor mymaster 127.0.0.1 6379 2"]</c>.
    /// </summary>
    public IReadOnlyList<string>? SentinelConfiguration { get; init; }

    /// <summary>The port, chosen on the first start and kept across restarts; 0 before.</summary>
    public int Port { get; private set; }

    /// <summary>The endpoint, as a StackExchange.Redis configuration string.</summary>
    public string EndPoint => $"127.0.0.1:{Port}";

    /// <summary>The server's working directory (its log is <c>redis.log</c> there).</summary>
    public string Directory { get; }

    /// <summary>Whether the process is running.</summary>
    public bool IsRunning
    {
        get
        {
            lock (_gate)
            {
                return _process is { HasExited: false };
            }
        }
    }

    /// <summary>
    /// Starts the server (on a new free port the first time, on the same port afterwards) and waits until it answers
    /// PING.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        var executable = SentinelConfiguration is null ? FindExecutable("redis-server") : FindExecutable("redis-sentinel", "redis-sentinel");
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsRunning)
        {
            return;
        }

        if (Port != 0)
        {
            await RelaunchAsync(executable, cancellationToken).ConfigureAwait(false);
            return;
        }

        // Another process may take a free port between the check and redis-server's bind: try a few.
        Exception? last = null;
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var port = FreePort(_clusterNode);
            try
            {
                await LaunchAsync(executable, port, cancellationToken).ConfigureAwait(false);
                Port = port;
                return;
            }
            catch (RedisServerStartException ex)
            {
                last = ex;
            }
        }

        throw last!;
    }

    /// <summary>
    /// Starts the server again on its port. While it was down, the kernel may have given that port to a client socket
    /// of another test as its local port (listening ports and outgoing connections share the ephemeral range): the
    /// bind then fails until that connection closes, so it is tried again for a while.
    /// </summary>
    private async Task RelaunchAsync(string executable, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + StartTimeout;
        while (true)
        {
            try
            {
                await LaunchAsync(executable, Port, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (RedisServerStartException ex) when (ex.Message.Contains("Address already in use", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Kills the server, as a crash would, and waits until the process is gone.</summary>
    public void Stop()
    {
        Process? process;
        lock (_gate)
        {
            process = _process;
            _process = null;
        }

        if (process is null)
        {
            return;
        }

        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        finally
        {
            process.Dispose();
        }
    }

    /// <summary>Stops the server with SIGSTOP, as a hung server: its connections stay open and nothing answers.</summary>
    public void Pause() => Signal("-STOP");

    /// <summary>Lets a paused server go on with SIGCONT.</summary>
    public void Resume() => Signal("-CONT");

    /// <summary>Sends one command to the server (see <see cref="RedisProtocolClient"/> for the reply types).</summary>
    public Task<object?> ExecuteAsync(params object[] args) => RedisProtocolClient.ExecuteAsync(Port, args);

    /// <summary>Sends one command and returns its reply as text (bulk and simple strings, integers).</summary>
    public async Task<string?> ExecuteTextAsync(params object[] args) => AsText(await ExecuteAsync(args).ConfigureAwait(false));

    /// <summary>The server's <c>INFO commandstats</c>.</summary>
    public async Task<RedisCommandStats> GetCommandStatsAsync() =>
        RedisCommandStats.Parse(await ExecuteTextAsync("INFO", "commandstats").ConfigureAwait(false) ?? "");

    Task IAsyncLifetime.InitializeAsync() => StartAsync();

    Task IAsyncLifetime.DisposeAsync()
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Stop();
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        TestDirectories.Delete(Directory);
    }

    /// <inheritdoc/>
    public override string ToString() => $"redis-server {EndPoint}";

    internal static string? AsText(object? reply) => reply switch
    {
        null => null,
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        string text => text,
        long number => number.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => throw new InvalidDataException($"Expected a text reply, got {reply.GetType().Name}."),
    };

    /// <summary>Finds <paramref name="name"/> on PATH, or fails saying how to install Redis.</summary>
    internal static string FindExecutable(string name, string package = "redis-server") =>
        Executables.Find(name, $"apt-get install -y {package}");

    private async Task LaunchAsync(string executable, int port, CancellationToken cancellationToken)
    {
        // redis-server dies with this process, however it dies (see OwnedProcess): a test host killed mid-run leaves
        // no server behind.
        var start = new ProcessStartInfo(executable)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Directory,
        };
        // A sentinel rewrites its configuration file as it learns the topology: it must have one of its own.
        string[] sentinel = [];
        if (SentinelConfiguration is { } lines)
        {
            var file = Path.Combine(Directory, "sentinel.conf");
            await File.WriteAllLinesAsync(file, lines, cancellationToken).ConfigureAwait(false);
            sentinel = [file];
        }

        string[] arguments =
        [
            .. sentinel,
            "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",

            // A replica syncs at once (the default waits 5 s for more replicas to share the transfer).
            "--repl-diskless-sync-delay", "0",
            "--dir", Directory,
            "--logfile", "redis.log",
            "--daemonize", "no",
            .. _clusterNode
                ? (string[])["--cluster-enabled", "yes", "--cluster-config-file", Path.Combine(Directory, "nodes.conf")]
                : [],
            .. ExtraArguments,
        ];
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = OwnedProcess.Start(start);
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        lock (_gate)
        {
            _process = process;
        }

        var deadline = DateTime.UtcNow + StartTimeout;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                lock (_gate)
                {
                    _process = null;
                }

                throw new RedisServerStartException(
                    $"redis-server on port {port} exited with code {process.ExitCode} while starting. Its log:{Environment.NewLine}{ReadLog()}");
            }

            try
            {
                if (await RedisProtocolClient.ExecuteAsync(port, ["PING"], cancellationToken).ConfigureAwait(false) is "PONG")
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is SocketException or IOException or RedisErrorReplyException or OperationCanceledException
                                       && !cancellationToken.IsCancellationRequested)
            {
                // Not listening yet, or still loading.
            }

            if (DateTime.UtcNow > deadline)
            {
                Stop();
                throw new RedisServerStartException(
                    $"redis-server on port {port} did not answer PING within {StartTimeout.TotalSeconds} s. Its log:{Environment.NewLine}{ReadLog()}");
            }

            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    private void Signal(string signal)
    {
        int pid;
        lock (_gate)
        {
            pid = _process is { HasExited: false } process ? process.Id : throw new InvalidOperationException($"{this} is not running.");
        }

        using var kill = Process.Start("kill", [signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill {signal} {pid} failed with code {kill.ExitCode}.");
        }
    }

    private string ReadLog()
    {
        try
        {
            return File.ReadAllText(Path.Combine(Directory, "redis.log"));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    /// <summary>A free loopback port; for a Cluster node, one whose bus port (+10000) is free too.</summary>
    private static int FreePort(bool withBusPort)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            if (!withBusPort)
            {
                return port;
            }

            if (port + 10000 > IPEndPoint.MaxPort)
            {
                continue;
            }

            try
            {
                using var bus = new TcpListener(IPAddress.Loopback, port + 10000);
                bus.Start();
                return port;
            }
            catch (SocketException)
            {
                // The bus port is taken: try another.
            }
        }

        throw new InvalidOperationException("No free loopback port pair was found for a Redis Cluster node.");
    }

    private void OnProcessExit(object? sender, EventArgs e) => Stop();

    private sealed class RedisServerStartException(string message) : Exception(message);
}
