namespace Asm.Testing.Redis;

/// <summary>
/// The commands the Redis driver's Lua scripts run. <c>INFO commandstats</c> counts them too, so they are subtracted
/// to count what a client sent (see <see cref="RedisCommandStats.TopLevelCommands"/>).
/// </summary>
public static class AsmScriptCommands
{
    public static IReadOnlyList<string> RunByScripts { get; } =
        ["hgetall", "hkeys", "hmget", "hget", "hset", "hdel", "exists", "del", "pexpire", "publish"];
}
