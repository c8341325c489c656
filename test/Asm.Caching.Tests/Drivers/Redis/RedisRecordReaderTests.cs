using System.Globalization;
using System.Text;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.Testing.Redis;
using CsCheck;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// A load without a lease reads the session hash with one <c>HGETALL</c> and judges it in C#
/// (<see cref="RedisRecordReader"/> and the record's rules); the Load script judges the same hash in Lua. Random
/// hashes, well-formed and damaged field by field, are loaded both ways and every outcome compared: status, values,
/// profiles and order, zombie answers, user.
/// </summary>
[Collection(RedisServerGroup.Name)]
public sealed class RedisRecordReaderTests(RedisServer server) : IDisposable
{
    private const int Samples = 1500;
    private const long Now = 1_800_000_000_000;
    private static readonly TimeSpan Idle = TimeSpan.FromMinutes(20);
    private static readonly long IdleMs = (long)Idle.TotalMilliseconds;

    private static readonly string Current = new('A', SessionKey.SecretLength);
    private static readonly string Zombie = new('B', SessionKey.SecretLength);
    private static readonly string Stranger = new('C', SessionKey.SecretLength);

    private readonly RedisTestDrivers _drivers = new(server.EndPoint);

    [Fact]
    public async Task LoadWithoutLease_RandomHashes_ReadsAsTheLoadScriptDoes()
    {
        var reading = _drivers.Create(TimeProvider.System);
        var scripted = _drivers.Create(TimeProvider.System);
        scripted.ReadsWithoutScript = false;
        var statuses = new Dictionary<SessionLoadStatus, int>();
        for (var i = 0; i < Samples; i++)
        {
            var pcg = new PCG(7, (ulong)i);
            var (text, raw, secret) = Hash.Generate(pcg, null!, out _);
            (byte[] Name, byte[] Value)[] fields = [.. text.Select(f => (Encoding.UTF8.GetBytes(f.Name), Encoding.UTF8.GetBytes(f.Value))), .. raw];
            var id = $"r{i:D13}";
            var key = reading.SessionKeyOf(id);
            await server.ExecuteAsync("DEL", key);
            await server.ExecuteAsync(["HSET", key, .. fields.SelectMany(f => new object[] { f.Name, f.Value })]);
            var request = new SessionLoadRequest { Key = SessionKey.Create(id, secret), Now = DateTimeOffset.FromUnixTimeMilliseconds(Now), IdleTimeout = Idle };

            var read = Describe(await reading.LoadAsync(request, CancellationToken.None));
            var script = Describe(await scripted.LoadAsync(request, CancellationToken.None));

            Assert.True(
                read == script,
                $"Sample {i} (PCG {pcg}), secret {secret[0]}, hash {string.Join(" ", fields.Select(f => $"{Show(f.Name)}={Show(f.Value)}"))}:\n  reader: {read}\n  script: {script}");
            var status = Enum.Parse<SessionLoadStatus>(read.Split(' ')[0]);
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
        }

        // The samples reach every outcome a load without a lease can have.
        Assert.Equal(
            Enum.GetValues<SessionLoadStatus>().Where(s => s != SessionLoadStatus.LockBusy).Order(),
            statuses.Keys.Order());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task LoadWithoutLease_CreationTimePastTheYear9999_IsCorruptNotAnException(bool readsWithoutScript)
    {
        // 16 digits, which the scripts take, reach past what a DateTimeOffset holds; the load hands the time out as one.
        var driver = _drivers.Create(TimeProvider.System);
        driver.ReadsWithoutScript = readsWithoutScript;
        var id = $"y{(readsWithoutScript ? 1 : 2):D13}";
        await server.ExecuteAsync(
            "HSET", driver.SessionKeyOf(id), "fmt", "1", "s", Current, "c", "1234567890123456", "ie", Now + IdleMs, "pa", Now + (2 * IdleMs));
        var request = new SessionLoadRequest { Key = SessionKey.Create(id, Current), Now = DateTimeOffset.FromUnixTimeMilliseconds(Now), IdleTimeout = Idle };

        Assert.Equal(SessionLoadStatus.Corrupt, (await driver.LoadAsync(request, CancellationToken.None)).Status);
    }

    public void Dispose() => _drivers.Dispose();

    /// <summary>
    /// A session hash (field names unique), as text and as fields that are not UTF-8, and the secret the load presents.
    /// The idle expiry is mostly too recent to slide, so that most loads are answered by the reader, not by the script
    /// it falls back to.
    /// </summary>
    private static Gen<((string Name, string Value)[] Fields, (byte[] Name, byte[] Value)[] Raw, string Secret)> Hash { get; } = Gen.Select(
        Gen.Select(Field("fmt", Gen.OneOf("1", "2")), Field("s", Gen.OneOf(Current, "")), Field("c", Number(-1_000)), Field("ie", Gen.Frequency((3, Number(1_170_000)), (1, Number(10_000))))),
        Gen.Select(Field("pa", Number(600_000)), Field("ae", Number(120_000), present: 1, absent: 2), Field("f", Number(0)), Field("n", Number(0))),
        Gen.Select(Lock(), Field("x", Gen.OneOf("1", "0"), present: 1, absent: 8), Field("u", Gen.OneOf("user-1", "ユーザー", ""), present: 1, absent: 2)),
        Gen.Select(Zombies(), Profiles(), Values(), Junk()),
        Gen.Select(Raw(), Gen.OneOf(Gen.Const(Current), Gen.Const(Zombie), Gen.Const(Stranger))))
        .Select((a, b, c, d, e) => (
            Join(a.Item1, a.Item2, a.Item3, a.Item4, b.Item1, b.Item2, b.Item3, b.Item4, c.Item1, c.Item2, c.Item3, d.Item1, d.Item2, d.Item3, d.Item4),
            e.Item1,
            e.Item2));

    private static (string Name, string Value)[] Join(params (string, string)[][] parts) => [.. parts.SelectMany(p => p)];

    /// <summary>The field, mostly present with a value of <paramref name="value"/>, sometimes damaged or left out.</summary>
    private static Gen<(string, string)[]> Field(string name, Gen<string> value, int present = 12, int absent = 1) => Gen.Frequency(
        (present, value.Select(v => new[] { (name, v) })),
        (1, Damaged().Select(v => new[] { (name, v) })),
        (absent, Gen.Const(Array.Empty<(string, string)>())));

    /// <summary>A time around <see cref="Now"/>: <paramref name="offset"/> ms from it, give or take a minute.</summary>
    private static Gen<string> Number(long offset) =>
        Gen.Long[-60_000, 60_000].Select(d => (offset == 0 ? Math.Abs(d) / 1000 : Now + offset + d).ToString(CultureInfo.InvariantCulture));

    /// <summary>Text an integer field must refuse, and two it must take.</summary>
    private static Gen<string> Damaged() =>
        Gen.OneOf("yesterday", "1e3", "", "-", "+5", " 12", "0x10", "12345678901234567", "-0", "1234567890123456");

    private static Gen<(string, string)[]> Lock() => Gen.Frequency(
        (6, Gen.Const(Array.Empty<(string, string)>())),
        (2, Number(30_000).Select(lx => new[] { ("lt", "token"), ("lx", lx) })),
        (1, Gen.OneOf(Gen.Const(new[] { ("lt", "token") }), Number(30_000).Select(lx => new[] { ("lx", lx) }))));

    /// <summary>Up to two zombies, each with its own sequence number: the zombie secret, and one the load never presents.</summary>
    private static Gen<(string, string)[]> Zombies() =>
        Gen.Select(ZombieValue(1), ZombieValue(2), Gen.Int[0, 3]).Select((first, second, which) => which switch
        {
            0 => Array.Empty<(string, string)>(),
            1 => [("z:" + Zombie, first)],
            2 => [("z:" + Stranger[..5], first), ("z:" + Zombie, second)],
            _ => [("z:" + Zombie, first), ("z:", second)],
        });

    private static Gen<string> ZombieValue(int seq) => Gen.Select(Gen.Long[-30_000, 30_000], Gen.Int[0, 6]).Select((d, form) =>
    {
        var expires = (Now + d).ToString(CultureInfo.InvariantCulture);
        return form switch
        {
            0 or 1 => $"{seq}:{expires}",
            2 or 3 => $"{seq}:{expires}:phone:v2",
            4 => $"{seq}:{expires}:",
            5 => $"-{seq}:{expires}",
            _ => "soon",
        };
    });

    /// <summary>Up to three profiles with distinct sequence numbers in a random order, sometimes one that does not parse.</summary>
    private static Gen<(string, string)[]> Profiles() =>
        Gen.Int[0, 3].SelectMany(count => Gen.Shuffle(new[] { "p:desktop", "p:phone", "p:tablet" }, count).Select(names => names
            .Select((name, i) => (name, (10 - i).ToString(CultureInfo.InvariantCulture))).ToArray()))
        .SelectMany(profiles => Gen.Frequency(
            (8, Gen.Const(profiles)),
            (1, Gen.Const<(string, string)[]>([.. profiles, ("p:watch", "first")]))));

    private static Gen<(string, string)[]> Values() =>
        Gen.Int[0, 3].Select(count => Enumerable.Range(0, count).Select(i => ($"v:name{i}", new string((char)('a' + i), i * 3))).ToArray());

    private static Gen<(string, string)[]> Junk() => Gen.Frequency(
        (12, Gen.Const(Array.Empty<(string, string)>())),
        (1, Gen.OneOf("junk", "v", "s:", "zz", "fmt2", "V:x", "x:").Select(name => new[] { (name, "1") })));

    /// <summary>
    /// Fields the client reads as text only by decoding them as UTF-8: value, profile and zombie names that are not
    /// UTF-8 (two of them decoding alike), values that are not, a zombie under the current secret, numbers at the edge of
    /// what the scripts take (16 digits, leading zeros).
    /// </summary>
    private static Gen<(byte[] Name, byte[] Value)[]> Raw() => Gen.Frequency(
        (4, Gen.Const(Array.Empty<(byte[], byte[])>())),
        (1, Gen.OneOf<(byte[], byte[])[]>(
            Gen.Const(new[] { (Bytes("v:", 0xFF), Bytes("one")), (Bytes("v:", 0xFE), Bytes("two")) }),
            Gen.Const(new[] { (Bytes("v:", 0xC3), Bytes("")), (Bytes("v:\uFFFD"), Bytes("three", 0xFF)) }),
            Gen.Const(new[] { (Bytes("v:", 0xF0, 0x9F), Bytes("four")), (Bytes("v:", 0xED, 0xA0, 0x80), Bytes("five")) }),
            Gen.Const(new[] { (Bytes("p:", 0xFF), Bytes("20")), (Bytes("p:", 0xFE), Bytes("0021")) }),
            Gen.Const(new[] { (Bytes("p:laptop", 0xC3), Bytes("9007199254740991")), (Bytes("p:laptop"), Bytes("0000000000000007")) }),
            Gen.Const(new[] { (Bytes("z:", 0xFF), Bytes($"30:{Now + 60_000}")) }),
            Gen.Const(new[] { (Bytes("z:" + Current), Bytes($"31:{Now + 60_000}:phone")) }),
            Gen.Const(new[] { (Bytes("z:" + Stranger[..7]), Bytes($"0032:{Now + 60_000}:", 0xFF, (byte)':')) }),
            Gen.Const(new[] { (Bytes("z:" + Stranger[..9]), Bytes($"33:{Now + 60_000}", 0xFF)) }),
            Gen.Const(new[] { (Bytes("", 0xFF, (byte)':'), Bytes("1")) }),
            Gen.Const(new[] { (Bytes("", 0xC3, (byte)'s'), Bytes("1")) }))));

    private static byte[] Bytes(string text, params byte[] tail) => [.. Encoding.UTF8.GetBytes(text), .. tail];

    private static string Show(byte[] bytes) =>
        bytes.Any(b => b is < 0x20 or >= 0x7F) ? "0x" + Convert.ToHexString(bytes) : Encoding.ASCII.GetString(bytes);

    private static string Describe(SessionLoadResult result)
    {
        var text = new StringBuilder(result.Status.ToString());
        if (result.Status is SessionLoadStatus.Found or SessionLoadStatus.Zombie)
        {
            text.Append(CultureInfo.InvariantCulture, $" created {result.CreatedAt.ToUnixTimeMilliseconds()}")
                .Append(CultureInfo.InvariantCulture, $" current {result.CurrentSecret?[0]} zombie-profile {result.ZombieProfile} latest {result.ZombieIsLatest}")
                .Append(CultureInfo.InvariantCulture, $" user {result.UserId} profiles [{string.Join(",", result.Profiles)}] lease {result.Lease is not null}")
                .Append(" values [")
                .AppendJoin(",", result.Values.OrderBy(v => v.Key, StringComparer.Ordinal).Select(v => $"{v.Key}={Convert.ToHexString(v.Value)}"))
                .Append(']');
        }

        return text.ToString();
    }
}
