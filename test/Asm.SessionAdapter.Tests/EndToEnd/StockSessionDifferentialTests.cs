using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Asm.Testing.Cleanup;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using CsCheck;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Asm.SessionAdapter.Tests.EndToEnd;

/// <summary>
/// Random sequences of <see cref="ISession"/> calls, request after request of one browser, through real HTTP on the
/// stock session (<c>AddDistributedMemoryCache</c> + <c>AddSession</c>) and on Asm in <see cref="SessionLockMode.Lockless"/>
/// and <see cref="SessionLockMode.Exclusive"/> mode in memory, and on the filesystem driver: every call's answer (values, <c>Keys</c>, <c>IsAvailable</c>, the
/// exception's type), each response's status, whether it sets the cookie, and which session id each request sees
/// (the same as an earlier request's, or a new one) must be the same. Between requests the browser may lose its cookie
/// or send one that is not the app's: there Asm also deletes it, as docs/lifetime.md says. Keys are compared as a set:
/// their order is unspecified on both (docs/getting-started.md). The fixed scripts are <see cref="StockSessionParityTests"/>.
/// </summary>
/// <remarks>
/// The sequences come from fixed seeds, so a run is the same every time; a drift is shrunk by CsCheck to a short
/// sequence printed with its seed, and <c>CsCheck_Seed=&lt;seed&gt; dotnet test --filter StockSessionDifferentialTests</c>
/// runs that one sequence again.
/// </remarks>
public sealed class StockSessionDifferentialTests(ITestOutputHelper output, RedisDriverFixture redis) : IClassFixture<RedisDriverFixture>
{
    /// <summary>How many sequences a run tries, each from its own fixed seed.</summary>
    private const int Sequences = 250;

    /// <summary>The PCG stream of the fixed seeds; sequence i uses seed i of it.</summary>
    private const uint SeedStream = 31;

    /// <summary>
    /// Names the calls pick from, by index: plain, differing in case only, empty, composed and decomposed forms of one
    /// letter, outside the BMP, a NUL, a byte order mark, U+FFFD, the longest name (65,535 UTF-8 bytes), one byte
    /// more, and <see langword="null"/>. (A lone surrogate is refused by Asm, as docs/drivers.md says: tested apart.)
    /// </summary>
    private static readonly string?[] Names =
        ["a", "b", "A", "", "\u00e9", "e\u0301", "\U0001F600", "\0nul", "\uFEFFbom", "\uFFFD", new string('x', 65_535), new string('y', 65_536), null];

    /// <summary>Values the calls pick from, by index: empty, one byte, text, an Int32, 100 KiB, and <see langword="null"/>.</summary>
    private static readonly byte[]?[] Values =
        [[], [1], "hello"u8.ToArray(), [0, 0, 0, 7], RandomNumberGenerator.GetBytes(100 * 1024), null];

    /// <summary>A session cookie that no app of the test wrote (another app's on the same host, an old one).</summary>
    private const string ForeignCookie = "CfDJ8ForeignCookieValue";

    private static readonly string[] Stores = ["stock", "asm-lockless", "asm-exclusive", "asm-filesystem", "asm-redis"];

    [Fact]
    public async Task RandomSequencesOfSessionCalls_AnswerOnAsmAsOnTheStockSession()
    {
        var directory = TestDirectories.Create("asm-stock-differential-");
        var apps = await Task.WhenAll(Stores.Select(store => StartAsync(store, directory)));
        try
        {
            async Task Run(Request[] requests)
            {
                var stock = await TranscriptAsync(apps[0], requests, asm: false);
                for (var i = 1; i < apps.Length; i++)
                {
                    var asm = await TranscriptAsync(apps[i], requests, asm: true);
                    if (asm != stock)
                    {
                        throw new DriftException($"{Stores[i]} answered{Environment.NewLine}{asm}{Environment.NewLine}where the stock session answered{Environment.NewLine}{stock}");
                    }
                }
            }

            if (Environment.GetEnvironmentVariable("CsCheck_Seed") is { Length: > 0 } replay)
            {
                await Check.SampleAsync(Sequence, Run, seed: replay, iter: 1, threads: 1, print: Describe);
                return;
            }

            var calls = 0;
            for (var i = 0; i < Sequences; i++)
            {
                var pcg = new PCG(SeedStream, (ulong)i);
                var seed = pcg.ToString();
                var sequence = Sequence.Generate(pcg, null!, out _);
                try
                {
                    await Run(sequence);
                }
                catch (DriftException drift)
                {
                    output.WriteLine($"Seed {seed}: {drift.Message}");

                    // CsCheck shrinks the drift to a short sequence and throws with the seed that reproduces it.
                    await Check.SampleAsync(Sequence, Run, seed: seed, iter: 500, threads: 1, print: Describe);
                    throw new DriftException($"Seed {seed} (CsCheck_Seed={seed} replays it):{Environment.NewLine}{Describe(sequence)}{Environment.NewLine}{drift.Message}");
                }

                calls += sequence.Sum(r => r.Calls.Length);
            }

            output.WriteLine($"{Sequences} sequences, {calls} calls, {Stores.Length} stores: the same answers.");
        }
        finally
        {
            foreach (var app in apps)
            {
                await app.DisposeAsync();
            }

            TestDirectories.Delete(directory);
        }
    }

    /// <summary>One to five requests of up to eight calls each; a last request reads everything the session holds.</summary>
    private static Gen<Request[]> Sequence { get; } =
        Gen.Select(Gen.Frequency((10, Gen.Const(Browser.Keeps)), (1, Gen.Const(Browser.Loses)), (1, Gen.Const(Browser.SendsAForeignCookie))), OpGen().Array[0, 8])
            .Select((browser, calls) => new Request(browser, calls))
            .Array[1, 5]
            .Select(requests => (Request[])[.. requests, new(Browser.Keeps, ObserveAll())]);

    /// <summary>The calls of the last request: every name, the keys, the id.</summary>
    private static Op[] ObserveAll() =>
        [new("keys"), .. Enumerable.Range(0, Names.Length - 1).Select(n => new Op("get", n)), new("id"), new("available")];

    private static Gen<Op> OpGen()
    {
        var name = Gen.Frequency((8, Gen.Int[0, 2]), (1, Gen.Int[3, Names.Length - 1]));
        var value = Gen.Frequency((6, Gen.Int[0, 3]), (1, Gen.Const(4)), (1, Gen.Const(5)));
        return Gen.Frequency(
            (8, Gen.Select(name, value).Select((n, v) => new Op("set", n, v))),
            (5, name.Select(n => new Op("get", n))),
            (3, name.Select(n => new Op("remove", n))),
            (1, Gen.Const(new Op("clear"))),
            (3, Gen.Const(new Op("keys"))),
            (2, Gen.Const(new Op("id"))),
            (1, Gen.Const(new Op("available"))),
            (1, Gen.Const(new Op("load"))),
            (2, Gen.Const(new Op("commit"))),
            (1, Gen.Const(new Op("load-cancelled"))),
            (1, Gen.Const(new Op("commit-cancelled"))),
            (2, Gen.Select(name, Gen.Int[0, 1]).Select((n, v) => new Op("setstring", n, v))),
            (2, name.Select(n => new Op("getstring", n))),
            (1, Gen.Select(name, Gen.Int[-1, 1]).Select((n, v) => new Op("setint", n, v))),
            (2, name.Select(n => new Op("getint", n))),
            (1, Gen.Const(new Op("throw"))));
    }

    private static string Describe(Request[] requests) => string.Join(" | ", requests.Select(r => r.ToString()));

    /// <summary>
    /// Starts the app of <paramref name="store"/> (Asm's on the filesystem under <paramref name="directory"/>, or on
    /// Redis under a scope of this run).
    /// </summary>
    private Task<WebApplication> StartAsync(string store, string directory) => SessionUsedAsAppsDoTests.StartStockOrAsmAsync(
        store == "stock" ? "stock" : "asm",
        app => app.MapPost("/run", async (HttpContext c) =>
        {
            var calls = (await new StreamReader(c.Request.Body).ReadToEndAsync()).Split(';', StringSplitOptions.RemoveEmptyEntries);
            var answers = new List<string>();
            foreach (var call in calls.Select(Op.Parse))
            {
                try
                {
                    answers.Add(await CallAsync(c.Session, call));
                }
                catch (Exception ex) when (ex is not ThrownByTheApp)
                {
                    answers.Add($"{call} threw {ex.GetType().Name}");
                }
            }

            return string.Join(Environment.NewLine, answers);
        }),
        services: services =>
        {
            if (store == "stock")
            {
                return;
            }

            var asm = services.AddAsmSession(o => o.DefaultLockMode = store == "asm-lockless" ? SessionLockMode.Lockless : SessionLockMode.Exclusive);
            if (store == "asm-filesystem")
            {
                asm.UseFileSystemDriver(directory);
            }
            else if (store == "asm-redis")
            {
                redis.Use(asm, "differential" + Guid.NewGuid().ToString("N"));
            }
        });

    /// <summary>Runs the requests as one browser (a fresh cookie jar), and writes down everything they answer.</summary>
    private static async Task<string> TranscriptAsync(WebApplication app, Request[] requests, bool asm)
    {
        var jar = new CookieJarHandler(app.GetTestServer().CreateHandler());
        using var client = new HttpClient(jar) { BaseAddress = new Uri("http://localhost/") };
        var ids = new List<string>();
        var transcript = new StringBuilder();
        foreach (var request in requests)
        {
            if (request.Browser != Browser.Keeps)
            {
                foreach (Cookie kept in jar.Cookies.GetAllCookies())
                {
                    kept.Expired = true;
                }
            }

            if (request.Browser == Browser.SendsAForeignCookie)
            {
                jar.Cookies.Add(new Cookie(AsmSessionOptions.DefaultCookieName, ForeignCookie, "/", "localhost"));
            }

            transcript.AppendLine(CultureInfo.InvariantCulture, $"{request.Browser}:");
            var foreign = jar.Cookies.GetCookieHeader(client.BaseAddress).Contains(ForeignCookie, StringComparison.Ordinal);
            HttpResponseMessage response;
            try
            {
                response = await client.PostAsync("/run", new StringContent(string.Join(";", request.Calls)));
            }
            catch (ThrownByTheApp)
            {
                // TestServer hands the client the app's exception as it is; nothing of the response was sent.
                transcript.AppendLine("[app threw]");
                continue;
            }

            var cookie = StockSessionEdgeTests.CookieOf(response);
            if (foreign && asm)
            {
                // Asm deletes a cookie it does not adopt when the request uses the session and sends no key of its own
                // (docs/lifetime.md; SessionFoundationTests.MalformedCookie_*); the stock session leaves it.
                cookie = cookie == "delete" ? "none" : cookie;
            }

            transcript.AppendLine(CultureInfo.InvariantCulture, $"[{(int)response.StatusCode} cookie={cookie} cache={response.Headers.CacheControl}]");
            foreach (var answer in (await response.Content.ReadAsStringAsync()).Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries))
            {
                // A session id is written as the first request that saw it, so that ids compare across stores.
                if (answer.StartsWith("id=", StringComparison.Ordinal))
                {
                    var id = answer[3..];
                    var index = ids.IndexOf(id);
                    transcript.AppendLine(CultureInfo.InvariantCulture, $"  id=#{(index < 0 ? ids.Count : index)}{(id.Length == 0 ? " (empty)" : "")}");
                    if (index < 0)
                    {
                        ids.Add(id);
                    }
                }
                else
                {
                    transcript.Append("  ").AppendLine(answer);
                }
            }
        }

        return transcript.ToString();
    }

    private static async Task<string> CallAsync(ISession session, Op call)
    {
        var name = call.Name < 0 ? null : Names[call.Name];
        switch (call.Kind)
        {
            case "set":
                session.Set(name!, Values[call.Value]!);
                return $"{call} ok";
            case "get":
                return $"{call} = " + (session.TryGetValue(name!, out var value) ? Show(value) : "<none>");
            case "remove":
                session.Remove(name!);
                return $"{call} ok";
            case "clear":
                session.Clear();
                return $"{call} ok";
            case "keys":
                // As a set: the order is unspecified on both.
                return $"{call} = [{string.Join(",", session.Keys.Select(NameOf).Order(StringComparer.Ordinal))}]";
            case "id":
                return "id=" + session.Id;
            case "available":
                return $"{call} = {session.IsAvailable}";
            case "load":
                await session.LoadAsync();
                return $"{call} ok";
            case "commit":
                await session.CommitAsync();
                return $"{call} ok";
            case "load-cancelled":
                await session.LoadAsync(new CancellationToken(canceled: true));
                return $"{call} ok";
            case "commit-cancelled":
                // What is stored afterwards is compared, not whether it threw: with nothing to write the stock session
                // refreshes the cache entry, and whether that sees the token is the cache's business (the memory
                // cache's does not, Redis's does). StockSessionEdgeTests has a commit of changes with a cancelled token.
                try
                {
                    await session.CommitAsync(new CancellationToken(canceled: true));
                }
                catch (OperationCanceledException)
                {
                }

                return $"{call} done";
            case "setstring":
                session.SetString(name!, call.Value == 0 ? "" : "text \u00e9\U0001F600");
                return $"{call} ok";
            case "getstring":
                return $"{call} = {session.GetString(name!) ?? "<none>"}";
            case "setint":
                session.SetInt32(name!, call.Value * int.MaxValue);
                return $"{call} ok";
            case "getint":
                return $"{call} = {session.GetInt32(name!)?.ToString(CultureInfo.InvariantCulture) ?? "<none>"}";
            case "throw":
                throw new ThrownByTheApp();
            default:
                throw new ArgumentException($"Unknown call {call.Kind}.");
        }
    }

    /// <summary>A name as the index it has in <see cref="Names"/> (names are long or unprintable).</summary>
    private static string NameOf(string name) => Array.IndexOf(Names, name) is var i and >= 0 ? $"#{i}" : $"?{Convert.ToHexString(Encoding.UTF8.GetBytes(name))}";

    private static string Show(byte[] value) => $"{value.Length} bytes {Convert.ToHexString(SHA256.HashData(value))[..12]}";

    /// <summary>One call: its kind, the index of its name in <see cref="Names"/> (-1 for none) and of its value (or a number).</summary>
    private sealed record Op(string Kind, int Name = -1, int Value = 0)
    {
        public static Op Parse(string text)
        {
            var parts = text.Split(' ');
            return new Op(parts[0], parts.Length > 1 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : -1,
                parts.Length > 2 ? int.Parse(parts[2], CultureInfo.InvariantCulture) : 0);
        }

        public override string ToString() => Kind switch
        {
            "set" or "setstring" or "setint" => $"{Kind} {Name} {Value}",
            "get" or "remove" or "getstring" or "getint" => $"{Kind} {Name}",
            _ => Kind,
        };
    }

    /// <summary>What the browser does with its cookie before a request.</summary>
    private enum Browser
    {
        Keeps,
        Loses,
        SendsAForeignCookie,
    }

    /// <summary>One request: what the browser does with its cookie first, then the calls the endpoint makes.</summary>
    private sealed record Request(Browser Browser, Op[] Calls)
    {
        public override string ToString() => $"{Browser}: {string.Join("; ", Calls.AsEnumerable())}";
    }

    /// <summary>What the <c>throw</c> call throws: an exception the app does not handle, which fails the request.</summary>
    private sealed class ThrownByTheApp : Exception;

    private sealed class DriftException(string message) : Exception(message);
}
