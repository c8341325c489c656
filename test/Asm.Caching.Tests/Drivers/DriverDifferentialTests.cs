using System.Text;
using Asm.Caching.Drivers.FileSystem;
using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Caching.Tests.Drivers.Redis;
using Asm.Testing.Redis;
using CsCheck;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;
using Asm.Testing.Cleanup;

namespace Asm.Caching.Tests.Drivers;

/// <summary>
/// One rulebook: the session rules exist twice (C# <c>SessionRecord</c> for the in-memory and filesystem drivers and for
/// Redis loads without a lease, Lua for the other Redis operations), so random sequences of operations and clock steps
/// run against every driver, Redis twice (once with every load a script), and every outcome is compared. The
/// sequences come from fixed seeds, so a run is the same every time; a drift is shrunk by CsCheck to a short sequence
/// whose seed is printed, and <c>CsCheck_Seed=&lt;seed&gt; dotnet test --filter DriverDifferentialTests</c> runs that
/// one sequence again.
/// </summary>
[Collection(RedisServerGroup.Name)]
public sealed class DriverDifferentialTests : IDisposable
{
    /// <summary>How many sequences a run tries, each from its own fixed seed.</summary>
    private const int Sequences = 600;

    /// <summary>The PCG stream of the fixed seeds; sequence i uses seed i of it.</summary>
    private const uint SeedStream = 12;

    private static readonly TimeSpan Idle = TimeSpan.FromMinutes(1);
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Secrets the steps pick from, by index, so that zombies, re-used secrets and wrong secrets all happen.</summary>
    private static readonly string[] Secrets = [new('A', SessionKey.SecretLength), new('B', SessionKey.SecretLength), new('C', SessionKey.SecretLength)];

    private static readonly string[] Names = ["a", "b", "c"];
    private static readonly string[] Profiles = ["p1", "p2", "p3"];
    private static readonly string[] Tokens = ["token-1", "token-2"];

    private readonly ITestOutputHelper _output;
    private readonly string _directory = TestDirectories.Create("asm-differential-");
    private readonly RedisTestDrivers _redis;
    private readonly RedisTestDrivers _redisScripts;
    private readonly (string Name, ISessionDriver Driver)[] _drivers;
    private int _sequence;

    public DriverDifferentialTests(RedisServer server, ITestOutputHelper output)
    {
        _output = output;
        _redis = new RedisTestDrivers(server.EndPoint);
        _redisScripts = new RedisTestDrivers(server.EndPoint);
        _drivers =
        [
            ("in-memory", new InMemoryDriver(TimeProvider.System)),
            ("filesystem", new FileSystemDriver(
                Options.Create(new FileSystemDriverOptions { Directory = _directory }), TimeProvider.System, NullLogger<FileSystemDriver>.Instance)),
            ("redis", _redis.CreateWithLeasesOnCallerClock()),
            ("redis, every load a script", ScriptsOnly(_redisScripts.CreateWithLeasesOnCallerClock())),
        ];
    }

    /// <summary>A Redis driver whose loads without a lease run the Load script too, instead of a plain read.</summary>
    private static RedisDriver ScriptsOnly(RedisDriver driver)
    {
        driver.ReadsWithoutScript = false;
        return driver;
    }

    [Fact]
    public async Task RandomOperationSequences_EveryDriver_SameOutcomes()
    {
        if (Environment.GetEnvironmentVariable("CsCheck_Seed") is { Length: > 0 } replay)
        {
            await Check.SampleAsync(Sequence, RunAsync, seed: replay, iter: 1, threads: 1, print: Describe);
            return;
        }

        var steps = 0;
        for (var i = 0; i < Sequences; i++)
        {
            var pcg = new PCG(SeedStream, (ulong)i);
            var seed = pcg.ToString();
            var sequence = Sequence.Generate(pcg, null!, out _);
            try
            {
                await RunAsync(sequence);
            }
            catch (DriftException drift)
            {
                _output.WriteLine($"Seed {seed}: {drift.Message}");

                // CsCheck shrinks the drift to a short sequence and throws with the seed that reproduces it.
                await Check.SampleAsync(Sequence, RunAsync, seed: seed, iter: 2_000, threads: 1, print: Describe);
                throw new DriftException($"Seed {seed} (CsCheck_Seed={seed} replays it): {drift.Message}");
            }

            steps += sequence.Length;
        }

        _output.WriteLine($"{Sequences} sequences, {steps} steps, {_drivers.Length} drivers: the same outcomes.");
    }

    public void Dispose()
    {
        _redis.Dispose();
        _redisScripts.Dispose();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>A sequence starts with the creation of session 0 with secret 0, so that most steps meet a live session.</summary>
    private static Gen<Step[]> Sequence { get; } = StepGen().Array[1, 40].Select(steps => (Step[])[new CreateStep(0, 0, false, [], []), .. steps]);

    private static Gen<Step> StepGen()
    {
        var id = Gen.Frequency((4, Gen.Const(0)), (1, Gen.Const(1)));
        var secret = Gen.Frequency((5, Gen.Const(0)), (2, Gen.Const(1)), (1, Gen.Const(2)));
        var token = Gen.Int[0, Tokens.Length - 1];
        var seconds = Gen.OneOf(1, 30, 90);
        var value = Gen.Frequency((1, Gen.Const((byte[]?)null)), (4, Gen.Byte.Array[0, 3].Select(b => (byte[]?)b)));
        var changes = Gen.Select(Gen.Int[0, Names.Length - 1], value).Array[0, 3];
        var profiles = Gen.Int[0, Profiles.Length - 1].Array[0, 2];
        var fenceOffset = Gen.Frequency((6, Gen.Const(0)), (1, Gen.Const(-1)), (1, Gen.Const(1)));
        var lease = Gen.Frequency((2, Gen.Const((int?)null)), (3, token.Select(t => (int?)t)));

        return Gen.Frequency(
            (3, Gen.Select(id, secret, Gen.Bool, changes, profiles)
                .Select((i, s, absolute, c, p) => (Step)new CreateStep(i, s, absolute, c, p))),
            (6, Gen.Select(id, secret, lease, seconds)
                .Select((i, s, t, d) => (Step)new LoadStep(i, s, t, d))),
            (5, Gen.Select(Gen.Select(id, lease, fenceOffset, Gen.Bool), Gen.Frequency((6, Gen.Const(false)), (1, Gen.Const(true))), changes, profiles, Gen.Int[0, 4])
                .Select((a, clear, c, p, max) => (Step)new CommitStep(a.Item1, a.Item2, a.Item3, a.Item4, clear, c, p, max))),
            (1, Gen.Select(id, token, fenceOffset, seconds)
                .Select((i, t, f, d) => (Step)new RenewStep(i, t, f, d))),
            (1, Gen.Select(id, token).Select((i, t) => (Step)new ReleaseStep(i, t))),
            (2, Gen.Select(id, secret, secret, seconds, Gen.Int[0, 4])
                .Select((i, s, n, w, max) => (Step)new RegenerateStep(i, s, n, w, max))),
            (1, Gen.Select(id, seconds).Select((i, w) => (Step)new DestroyStep(i, w))),
            (4, Gen.OneOf(0L, 1L, 1_000L, 3_000L, 4_000L, 30_000L, 56_999L, 59_999L, 60_000L, 61_000L, 150_000L).Select(ms => (Step)new AdvanceStep(ms))));
    }

    private static string Describe(Step[] steps) => string.Join(Environment.NewLine, steps.Select((s, i) => $"{i,3}: {s}"));

    /// <summary>Runs one sequence on every driver, on session ids of its own, and compares each step's outcome.</summary>
    private async Task RunAsync(Step[] steps)
    {
        var run = Interlocked.Increment(ref _sequence);
        var ids = new[] { $"d{run:D12}0", $"d{run:D12}1" };
        var now = Start.AddDays(run);
        var fences = new Dictionary<(int Id, int Token), long>();
        var outcomes = new string[_drivers.Length];
        for (var i = 0; i < steps.Length; i++)
        {
            for (var d = 0; d < _drivers.Length; d++)
            {
                outcomes[d] = await ApplyAsync(_drivers[d].Driver, steps[i], ids, now, fences, reference: d == 0);
            }

            for (var d = 1; d < _drivers.Length; d++)
            {
                if (outcomes[d] != outcomes[0])
                {
                    throw new DriftException(
                        $"step {i} ({steps[i]}): {_drivers[0].Name} says {outcomes[0]}, {_drivers[d].Name} says {outcomes[d]}");
                }
            }

            if (steps[i] is AdvanceStep advance)
            {
                now = now.AddMilliseconds(advance.Milliseconds);
            }
        }
    }

    private static async Task<string> ApplyAsync(
        ISessionDriver driver, Step step, string[] ids, DateTimeOffset now, Dictionary<(int, int), long> fences, bool reference)
    {
        var none = CancellationToken.None;
        switch (step)
        {
            case CreateStep create:
                return (await driver.CommitAsync(
                    new SessionCommitRequest
                    {
                        SessionId = ids[create.Id],
                        CreateWithSecret = Secrets[create.Secret],
                        AbsoluteExpiresAt = create.Absolute ? now.AddSeconds(90) : null,
                        Now = now,
                        IdleTimeout = Idle,
                        Changes = ToChanges(create.Changes),
                        AddProfiles = [.. create.Profiles.Select(p => Profiles[p])],
                    },
                    none)).ToString();

            case LoadStep load:
                var lease = load.Token is { } t ? new SessionLease(Tokens[t], TimeSpan.FromSeconds(load.LeaseSeconds)) : null;
                var loaded = await driver.LoadAsync(
                    new SessionLoadRequest { Key = SessionKey.Create(ids[load.Id], Secrets[load.Secret]), Now = now, IdleTimeout = Idle, Lease = lease },
                    none);
                if (reference && load.Token is { } granted && loaded.Lease is { } held)
                {
                    fences[(load.Id, granted)] = held.Fence;
                }

                return Describe(loaded);

            case CommitStep commit:
                return (await driver.CommitAsync(
                    new SessionCommitRequest
                    {
                        SessionId = ids[commit.Id],
                        Now = now,
                        IdleTimeout = Idle,
                        Lease = commit.Token is { } c ? LeaseOf(commit.Id, c, commit.FenceOffset, 30, fences) : null,
                        ReleaseLock = commit.Release,
                        Clear = commit.Clear,
                        Changes = ToChanges(commit.Changes),
                        AddProfiles = [.. commit.Profiles.Select(p => Profiles[p])],
                        MaxProfiles = commit.MaxProfiles,
                    },
                    none)).ToString();

            case RenewStep renew:
                return (await driver.RenewLockAsync(
                    ids[renew.Id], LeaseOf(renew.Id, renew.Token, renew.FenceOffset, renew.LeaseSeconds, fences), now, none)).ToString();

            case ReleaseStep release:
                await driver.ReleaseLockAsync(ids[release.Id], LeaseOf(release.Id, release.Token, 0, 30, fences), none);
                return "released";

            case RegenerateStep regenerate:
                return (await driver.RegenerateAsync(
                    new SessionRegenerateRequest
                    {
                        Key = SessionKey.Create(ids[regenerate.Id], Secrets[regenerate.Secret]),
                        NewSecret = Secrets[regenerate.NewSecret],
                        Now = now,
                        ZombieExpiresAt = now.AddSeconds(regenerate.WindowSeconds),
                        MaxZombies = regenerate.MaxZombies,
                    },
                    none)).ToString();

            case DestroyStep destroy:
                await driver.DestroyAsync(ids[destroy.Id], now, now.AddSeconds(destroy.TombstoneSeconds), none);
                return "destroyed";

            default:
                return "";
        }
    }

    private static SessionLease LeaseOf(int id, int token, int fenceOffset, int seconds, Dictionary<(int, int), long> fences) =>
        new(Tokens[token], TimeSpan.FromSeconds(seconds), fences.GetValueOrDefault((id, token)) + fenceOffset);

    private static Dictionary<string, byte[]?> ToChanges((int Name, byte[]? Value)[] changes)
    {
        var result = new Dictionary<string, byte[]?>(StringComparer.Ordinal);
        foreach (var (name, value) in changes)
        {
            result[Names[name]] = value;
        }

        return result;
    }

    private static string Describe(SessionLoadResult result)
    {
        if (result.Status is not (SessionLoadStatus.Found or SessionLoadStatus.Zombie))
        {
            return result.Status.ToString();
        }

        var text = new StringBuilder()
            .Append(result.Status)
            .Append(" created=").Append(result.CreatedAt.ToUnixTimeMilliseconds())
            .Append(" current=").Append(result.CurrentSecret is null ? "-" : Array.IndexOf(Secrets, result.CurrentSecret).ToString(System.Globalization.CultureInfo.InvariantCulture))
            .Append(" latest=").Append(result.ZombieIsLatest)
            .Append(" fence=").Append(result.Lease?.Fence.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-")
            .Append(" profiles=[").AppendJoin(',', result.Profiles).Append(']')
            .Append(" values={");
        foreach (var (name, value) in result.Values.OrderBy(v => v.Key, StringComparer.Ordinal))
        {
            text.Append(name).Append('=').Append(Convert.ToHexString(value)).Append(';');
        }

        return text.Append('}').ToString();
    }

    private sealed class DriftException(string message) : Exception(message);

    private abstract record Step;

    private sealed record CreateStep(int Id, int Secret, bool Absolute, (int Name, byte[]? Value)[] Changes, int[] Profiles) : Step
    {
        public override string ToString() =>
            $"Create(id {Id}, secret {Secret}, absolute {Absolute}, changes [{DescribeChanges(Changes)}], profiles [{string.Join(',', Profiles)}])";
    }

    private sealed record LoadStep(int Id, int Secret, int? Token, int LeaseSeconds) : Step
    {
        public override string ToString() =>
            $"Load(id {Id}, secret {Secret}, {(Token is { } t ? $"lease token {t} for {LeaseSeconds} s" : "no lease")})";
    }

    private sealed record CommitStep(
        int Id, int? Token, int FenceOffset, bool Release, bool Clear, (int Name, byte[]? Value)[] Changes, int[] Profiles, int MaxProfiles) : Step
    {
        public override string ToString() =>
            $"Commit(id {Id}, {(Token is { } t ? $"lease token {t} fence {FenceOffset:+0;-0;+0}{(Release ? " release" : "")}" : "lockless")}"
            + $"{(Clear ? ", clear" : "")}, changes [{DescribeChanges(Changes)}], profiles [{string.Join(',', Profiles)}] max {MaxProfiles})";
    }

    private sealed record RenewStep(int Id, int Token, int FenceOffset, int LeaseSeconds) : Step;

    private sealed record ReleaseStep(int Id, int Token) : Step;

    private sealed record RegenerateStep(int Id, int Secret, int NewSecret, int WindowSeconds, int MaxZombies) : Step;

    private sealed record DestroyStep(int Id, int TombstoneSeconds) : Step;

    private sealed record AdvanceStep(long Milliseconds) : Step;

    private static string DescribeChanges((int Name, byte[]? Value)[] changes) =>
        string.Join(", ", changes.Select(c => $"{Names[c.Name]}={(c.Value is null ? "delete" : Convert.ToHexString(c.Value))}"));
}
