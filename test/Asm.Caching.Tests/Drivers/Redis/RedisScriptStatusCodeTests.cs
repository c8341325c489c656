using System.Text.RegularExpressions;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// The status codes the Lua scripts return are the C# enums' values: every enum member has its constant in the
/// scripts, named after it (<c>ZombieExpired</c> is <c>ZOMBIE_EXPIRED</c>), with the same number, and no constant is
/// left over. The driver turns a code it does not know into an error, never into Corrupt.
/// </summary>
public sealed partial class RedisScriptStatusCodeTests
{
    [Fact]
    public void LoadStatusCodes_InScripts_AreTheEnumValues() =>
        Assert.Equal(EnumCodes<SessionLoadStatus>(), LuaCodes(RedisScripts.Load, "FOUND"));

    [Fact]
    public void CommitStatusCodes_InScripts_AreTheEnumValues() =>
        Assert.Equal(EnumCodes<SessionCommitStatus>(), LuaCodes(RedisScripts.Commit, "COMMITTED"));

    [Theory]
    [InlineData(nameof(RedisScripts.Load))]
    [InlineData(nameof(RedisScripts.Commit))]
    [InlineData(nameof(RedisScripts.Renew))]
    [InlineData(nameof(RedisScripts.Release))]
    [InlineData(nameof(RedisScripts.Regenerate))]
    [InlineData(nameof(RedisScripts.Destroy))]
    public void SessionScripts_EveryOne_DeclareBothCodeLists(string script)
    {
        var text = (string)typeof(RedisScripts).GetField(script)!.GetValue(null)!;

        Assert.Equal(EnumCodes<SessionLoadStatus>(), LuaCodes(text, "FOUND"));
        Assert.Equal(EnumCodes<SessionCommitStatus>(), LuaCodes(text, "COMMITTED"));
    }

    [Fact]
    public void ToLoadStatus_EveryScriptCode_IsItsEnumMember()
    {
        foreach (var (name, code) in LuaCodes(RedisScripts.Load, "FOUND"))
        {
            Assert.Equal(name, UpperSnake().Replace(RedisDriver.ToLoadStatus(code).ToString(), "$1_$2").ToUpperInvariant());
        }
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(8)]
    [InlineData(long.MaxValue)]
    public void ToLoadStatus_UnknownCode_ThrowsInsteadOfCorrupt(long code) =>
        Assert.Contains($"status code {code}", Assert.Throws<RedisDriverException>(() => RedisDriver.ToLoadStatus(code)).Message, StringComparison.Ordinal);

    [Theory]
    [InlineData(-1)]
    [InlineData(3)]
    public void ToCommitStatus_UnknownCode_ThrowsInsteadOfNotFound(long code) =>
        Assert.Contains($"status code {code}", Assert.Throws<RedisDriverException>(() => RedisDriver.ToCommitStatus(code)).Message, StringComparison.Ordinal);

    private static SortedDictionary<string, int> EnumCodes<TEnum>()
        where TEnum : struct, Enum =>
        new(Enum.GetValues<TEnum>().ToDictionary(v => UpperSnake().Replace(v.ToString(), "$1_$2").ToUpperInvariant(), v => Convert.ToInt32(v, null)), StringComparer.Ordinal);

    /// <summary>Reads the one line <c>local FIRST, SECOND, ... = 0, 1, ...</c> that starts with <paramref name="first"/>.</summary>
    private static SortedDictionary<string, int> LuaCodes(string script, string first)
    {
        var line = Assert.Single(script.Split('\n'), l => l.TrimStart().StartsWith($"local {first},", StringComparison.Ordinal));
        var sides = line.Trim()["local ".Length..].Split('=');
        var names = sides[0].Split(',', StringSplitOptions.TrimEntries);
        var codes = sides[1].Split(',', StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        Assert.Equal(names.Length, codes.Length);
        return new(names.Zip(codes).ToDictionary(p => p.First, p => p.Second), StringComparer.Ordinal);
    }

    [GeneratedRegex("([a-z])([A-Z])")]
    private static partial Regex UpperSnake();
}
