using System.Text.RegularExpressions;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// The status codes the Lua scripts return are the C# enums' values: every enum member has its constant in the
/// scripts, named after it (<c>ZombieExpired</c> is <c>ZOMBIE_EXPIRED</c>), with the same number, and no constant is
/// left over.
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
