// The soak run: mixed traffic (ReadOnly, Exclusive, Lockless, regenerate, destroy) over many sessions, on one driver,
// for a fixed time, through real HTTP on loopback. Usage (bench/soak.sh passes these):
//   Asm.Soak --driver inmemory|filesystem|redis [--redis HOST:PORT] [--directory DIR] [--seconds 600]
//            [--sessions 20000] [--hot 50] [--concurrency 32] [--sample 10] [--idle 180]
// Every request the load sends is checked: a counter increment is acknowledged only once committed (the endpoint
// commits before answering), so at the end every session's counter must equal its acknowledged increments, and its
// marks (set and removed by Lockless deltas) the acknowledged ones exactly.
// The data a run keeps is bounded (a session holds a counter and at most MarkNames marks; a destroyed session's
// tombstone lives about two idle timeouts), so memory that still grows once the first tombstones expire is a leak.
// Prints one Markdown report: requests, errors, lost updates, memory over time, files left.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Asm.SessionAdapter;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using StackExchange.Redis;

var settings = args.Chunk(2).ToDictionary(p => p[0].TrimStart('-'), p => p[1], StringComparer.Ordinal);
string Setting(string name, string fallback) => settings.GetValueOrDefault(name, fallback);
var driver = Setting("driver", "inmemory");
var seconds = int.Parse(Setting("seconds", "600"), CultureInfo.InvariantCulture);
var sessionCount = int.Parse(Setting("sessions", "20000"), CultureInfo.InvariantCulture);
var hotCount = int.Parse(Setting("hot", "50"), CultureInfo.InvariantCulture);
var concurrency = int.Parse(Setting("concurrency", "32"), CultureInfo.InvariantCulture);
var sampleEvery = TimeSpan.FromSeconds(int.Parse(Setting("sample", "10"), CultureInfo.InvariantCulture));
var redis = Setting("redis", "");
var directory = Setting("directory", "");
var idleTimeout = TimeSpan.FromSeconds(int.Parse(Setting("idle", "180"), CultureInfo.InvariantCulture));
const int MarkNames = 8;

var builder = WebApplication.CreateSlimBuilder(args);
builder.WebHost.UseUrls("http://127.0.0.1:0");
builder.Logging.ClearProviders();
var sessions = builder.Services.AddAsmSession(o => o.IdleTimeout = idleTimeout);
switch (driver)
{
    case "inmemory":
        sessions.UseInMemoryDriver();
        break;
    case "filesystem":
        sessions.UseFileSystemDriver(directory);
        break;
    case "redis":
        sessions.UseRedisDriver(o => o.Configuration = redis);
        break;
    default:
        throw new ArgumentException("--driver must be inmemory, filesystem or redis.");
}

var app = builder.Build();
app.UseSession();

// Every write commits before it answers, so that an answer means "stored".
app.MapPost("/inc", async (HttpContext c) =>
{
    await c.Session.LoadAsync();
    c.Session.SetInt32("n", (c.Session.GetInt32("n") ?? 0) + 1);
    await c.Session.CommitAsync();
    return "ok";
});
app.MapPost("/mark/{name}", async (HttpContext c, string name) =>
{
    await c.Session.LoadAsync();
    c.Session.SetInt32("m:" + name, 1);
    await c.Session.CommitAsync();
    return "ok";
}).WithSessionLock(SessionLockMode.Lockless);
app.MapPost("/unmark/{name}", async (HttpContext c, string name) =>
{
    await c.Session.LoadAsync();
    c.Session.Remove("m:" + name);
    await c.Session.CommitAsync();
    return "ok";
}).WithSessionLock(SessionLockMode.Lockless);
app.MapPost("/regenerate", async (HttpContext c) =>
{
    await c.Session.LoadAsync();
    await c.Session.RegenerateIdAsync();
    return "ok";
});
app.MapPost("/destroy", async (HttpContext c) =>
{
    await c.Session.LoadAsync();
    await c.Session.DestroyAsync();
    return "ok";
});
app.MapGet("/read", async (HttpContext c) =>
{
    await c.Session.LoadAsync();
    var marks = c.Session.Keys.Where(k => k.StartsWith("m:", StringComparison.Ordinal)).Select(k => k[2..]).Order(StringComparer.Ordinal);
    return $"{c.Session.GetInt32("n") ?? 0} {string.Join(',', marks)}";
}).WithSessionLock(SessionLockMode.ReadOnly);

await app.StartAsync();
var address = new Uri(app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, UseCookies = false }) { BaseAddress = address };
var state = Enumerable.Range(0, sessionCount).Select(_ => new SessionState()).ToArray();
var errors = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
long requests = 0;
long nextCold = 0;
var load = Stopwatch.StartNew();

async Task<HttpResponseMessage?> SendAsync(HttpMethod method, string path, SessionState session)
{
    using var request = new HttpRequestMessage(method, path);
    if (session.Cookie is { } cookie)
    {
        request.Headers.Add("Cookie", cookie);
    }

    Interlocked.Increment(ref requests);
    session.Touched(load.Elapsed);
    try
    {
        var response = await http.SendAsync(request);
        if (response.Headers.TryGetValues("Set-Cookie", out var set))
        {
            var value = set.First().Split(';')[0];
            session.Cookie = value.EndsWith('=') ? null : value;
        }

        if (response.StatusCode != HttpStatusCode.OK)
        {
            errors.AddOrUpdate($"{method} {path.Split('/')[1]}: {(int)response.StatusCode}", 1, (_, n) => n + 1);
            return null;
        }

        return response;
    }
    catch (HttpRequestException ex)
    {
        errors.AddOrUpdate($"{method} {path.Split('/')[1]}: {ex.GetType().Name}", 1, (_, n) => n + 1);
        return null;
    }
}

// Cold sessions are each driven by one worker at a time (a lock per session), so their expected state is exact
// whatever the mix, and in turn, so that each is used far more often than once per idle timeout (the report gives the
// longest gap); hot sessions take Exclusive increments from every worker at once, the case locking is for.
async Task StepAsync(Random random)
{
    if (random.Next(10) == 0)
    {
        var hot = state[random.Next(hotCount)];
        if (await SendAsync(HttpMethod.Post, "/inc", hot) is not null)
        {
            Interlocked.Increment(ref hot.Counter);
        }

        return;
    }

    var session = state[hotCount + (int)(Interlocked.Increment(ref nextCold) % (sessionCount - hotCount))];
    if (!await session.Gate.WaitAsync(0))
    {
        return;
    }

    try
    {
        var roll = random.Next(100);
        if (session.Cookie is null || roll < 30)
        {
            if (await SendAsync(HttpMethod.Post, "/inc", session) is not null)
            {
                session.Counter++;
            }
        }
        else if (roll < 70)
        {
            await SendAsync(HttpMethod.Get, "/read", session);
        }
        else if (roll < 90)
        {
            var mark = random.Next(MarkNames).ToString(CultureInfo.InvariantCulture);
            var set = !session.Marks.Contains(mark);
            if (await SendAsync(HttpMethod.Post, (set ? "/mark/" : "/unmark/") + mark, session) is not null)
            {
                _ = set ? session.Marks.Add(mark) : session.Marks.Remove(mark);
            }
        }
        else if (roll < 98)
        {
            await SendAsync(HttpMethod.Post, "/regenerate", session);
        }
        else if (await SendAsync(HttpMethod.Post, "/destroy", session) is not null)
        {
            session.Cookie = null;
            session.Counter = 0;
            session.Marks.Clear();
        }
    }
    finally
    {
        session.Gate.Release();
    }
}

var process = Process.GetCurrentProcess();
ConnectionMultiplexer? redisInfo = driver == "redis" ? await ConnectionMultiplexer.ConnectAsync(redis + ",allowAdmin=true") : null;
async Task<string> SampleAsync(TimeSpan at)
{
    process.Refresh();
    var line = $"| {at.TotalSeconds:0} | {Interlocked.Read(ref requests)} | {process.WorkingSet64 / 1048576.0:0.0} | {GC.GetTotalMemory(false) / 1048576.0:0.0}";
    if (redisInfo is not null)
    {
        var info = await redisInfo.GetServer(redisInfo.GetEndPoints()[0]).InfoAsync("memory");
        var used = info.SelectMany(g => g).First(p => p.Key == "used_memory").Value;
        line += $" | {long.Parse(used, CultureInfo.InvariantCulture) / 1048576.0:0.0}";
    }

    return line + " |";
}

// The hot sessions exist before the load starts, so that their parallel increments all go to one session each.
foreach (var hot in state.Take(hotCount))
{
    if (await SendAsync(HttpMethod.Post, "/inc", hot) is not null)
    {
        hot.Counter++;
    }
}

var samples = new List<string> { await SampleAsync(TimeSpan.Zero) };
var clock = Stopwatch.StartNew();
using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
{
    var random = new Random(w);
    while (!stop.IsCancellationRequested)
    {
        await StepAsync(random);
    }
})).ToList();
var sampling = Task.Run(async () =>
{
    while (!stop.IsCancellationRequested)
    {
        try
        {
            await Task.Delay(sampleEvery, stop.Token);
        }
        catch (OperationCanceledException)
        {
            break;
        }

        samples.Add(await SampleAsync(clock.Elapsed));
    }
});
await Task.WhenAll(workers);
await sampling;
var elapsed = clock.Elapsed;
var served = Interlocked.Read(ref requests);

// The check: every session's counter and marks against what was acknowledged.
long lost = 0, extra = 0, unreadable = 0, live = 0;
foreach (var session in state)
{
    if (session.Cookie is null)
    {
        continue;
    }

    live++;
    var response = await SendAsync(HttpMethod.Get, "/read", session);
    if (response is null)
    {
        unreadable++;
        continue;
    }

    var parts = (await response.Content.ReadAsStringAsync()).Split(' ');
    var counter = int.Parse(parts[0], CultureInfo.InvariantCulture);
    var marks = parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries);
    lost += Math.Max(0, session.Counter - counter) + session.Marks.Except(marks).Count();
    extra += Math.Max(0, counter - session.Counter) + marks.Except(session.Marks).Count();
}

samples.Add(await SampleAsync(clock.Elapsed));
Console.WriteLine($"## Soak: {driver}, {elapsed.TotalSeconds:0} s, {concurrency} concurrent clients, {sessionCount} sessions ({hotCount} hot), idle timeout {idleTimeout.TotalSeconds:0} s");
Console.WriteLine();
Console.WriteLine($"- requests served: {served} ({served / elapsed.TotalSeconds:0}/s)");
Console.WriteLine($"- errors: {errors.Values.Sum()}{(errors.IsEmpty ? "" : " (" + string.Join(", ", errors.Select(e => $"{e.Key} x{e.Value}")) + ")")}");
Console.WriteLine($"- lost updates: {lost} (acknowledged increments and marks missing at the end), extra: {extra}, unreadable sessions: {unreadable}");
Console.WriteLine($"- sessions live at the end: {live}; longest gap between two requests of a cold session: {state.Skip(hotCount).Max(s => s.LongestGap).TotalSeconds:0} s");
if (driver == "filesystem")
{
    var files = Directory.GetFiles(directory, "*.session").Length;
    Console.WriteLine($"- session files on disk at the end: {files} (live sessions {live}; the rest are tombstones and sessions replaced by destroy, removed by the sweeper once expired)");
}

Console.WriteLine();
Console.WriteLine(redisInfo is null ? "| s | requests | working set MB | GC heap MB |" : "| s | requests | working set MB | GC heap MB | Redis used_memory MB |");
Console.WriteLine(redisInfo is null ? "| --- | --- | --- | --- |" : "| --- | --- | --- | --- | --- |");
foreach (var sample in samples)
{
    Console.WriteLine(sample);
}

redisInfo?.Dispose();
await app.StopAsync();
return errors.IsEmpty && lost == 0 && unreadable == 0 ? 0 : 1;

/// <summary>What the load knows of one session: its cookie and what it was told was stored.</summary>
internal sealed class SessionState
{
    public SemaphoreSlim Gate { get; } = new(1, 1);

    public string? Cookie { get; set; }

    public int Counter;

    public HashSet<string> Marks { get; } = new(StringComparer.Ordinal);

    public TimeSpan LongestGap { get; private set; }

    private TimeSpan? _last;

    /// <summary>Records a request sent at <paramref name="at"/> (a cold session sends one at a time).</summary>
    public void Touched(TimeSpan at)
    {
        if (_last is { } last && at - last > LongestGap)
        {
            LongestGap = at - last;
        }

        _last = at;
    }
}
