using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using Asm.Caching.Drivers.Redis;

namespace Asm.Testing.Redis;

/// <summary>
/// Calls per command from <c>INFO commandstats</c>, and the difference between two snapshots. Redis counts the
/// commands a Lua script runs under their own names too, so a delta mixes what clients sent with what scripts ran:
/// <see cref="TopLevelCommands"/> separates them.
/// </summary>
public sealed class RedisCommandStats
{
    private readonly Dictionary<string, long> _calls;

    /// <summary>
    /// The commands the Redis driver's Lua scripts run inside Redis (read from the scripts themselves: <c>redis.call('X'</c>,
    /// <c>redis.pcall('X'</c> and the scripts' <c>batch('X'</c> helper), to pass to
    /// <see cref="TopLevelCommands"/>. The driver sends two commands outside a script: a cache removal
    /// (<c>UNLINK</c>) and a session load without a lease (<c>HGETALL</c>).
    /// </summary>
    public static IReadOnlyList<string> CommandsRunByAsmScripts { get; } = new[] { typeof(RedisScripts), typeof(RedisDriver.TrackingScripts) }
        .SelectMany(t => t.GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static))
        .Where(f => f.IsLiteral && f.FieldType == typeof(string))
        .SelectMany(f => Regex.Matches((string)f.GetRawConstantValue()!, @"(?:redis\.p?call|batch)\('([A-Za-z]+)'"))
        .Select(m => m.Groups[1].Value.ToLowerInvariant())
        .Distinct()
        .Order(StringComparer.Ordinal)
        .ToArray();

    private RedisCommandStats(Dictionary<string, long> calls) => _calls = calls;

    /// <summary>Calls per command name (lower case; subcommands as <c>script|load</c>).</summary>
    public IReadOnlyDictionary<string, long> Calls => _calls;

    /// <summary>Calls of <paramref name="command"/>; 0 when it never ran.</summary>
    public long this[string command] => _calls.GetValueOrDefault(command);

    /// <summary>Parses the text of <c>INFO commandstats</c>.</summary>
    public static RedisCommandStats Parse(string info)
    {
        ArgumentNullException.ThrowIfNull(info);
        var calls = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var raw in info.Split('\n'))
        {
            // cmdstat_evalsha:calls=1,usec=52,usec_per_call=52.00,rejected_calls=0,failed_calls=0
            var line = raw.Trim();
            if (!line.StartsWith("cmdstat_", StringComparison.Ordinal))
            {
                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var name = line["cmdstat_".Length..colon];
            foreach (var field in line[(colon + 1)..].Split(','))
            {
                if (field.StartsWith("calls=", StringComparison.Ordinal))
                {
                    calls[name] = long.Parse(field["calls=".Length..], CultureInfo.InvariantCulture);
                }
            }
        }

        return new RedisCommandStats(calls);
    }

    /// <summary>The counts of several servers added up (the nodes of a cluster).</summary>
    public static RedisCommandStats Sum(IEnumerable<RedisCommandStats> stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        var calls = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var snapshot in stats)
        {
            foreach (var (name, count) in snapshot._calls)
            {
                calls[name] = calls.GetValueOrDefault(name) + count;
            }
        }

        return new RedisCommandStats(calls);
    }

    /// <summary>
    /// What ran between <paramref name="before"/> and this snapshot, without <c>INFO</c> (the snapshots send it
    /// themselves, one per node); commands whose count did not change are left out.
    /// </summary>
    public RedisCommandStats Since(RedisCommandStats before)
    {
        ArgumentNullException.ThrowIfNull(before);
        var calls = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, count) in _calls)
        {
            var delta = count - before[name];
            if (delta != 0 && name != "info")
            {
                calls[name] = delta;
            }
        }

        return new RedisCommandStats(calls);
    }

    /// <summary>
    /// Commands the client sends on its own, whatever the application does: the keep-alive <c>PING</c> (every
    /// connection, now and then) and the commands of its connection handshake.
    /// </summary>
    public static IReadOnlyList<string> ConnectionHousekeeping { get; } =
        ["ping", "echo", "info", "client|setname", "client|list", "cluster|nodes", "config|get", "subscribe", "unsubscribe"];

    /// <summary>
    /// Commands a client sent for the application, that is round trips when nothing is pipelined: every counted
    /// command except those in <paramref name="commandsRunByScripts"/>, which the delta counts because a script ran
    /// them, and the client's <see cref="ConnectionHousekeeping"/>. One command is both: a script reads a session
    /// with one <c>HGETALL</c>, and the driver's load without a lease is one <c>HGETALL</c> of its own. A script call
    /// reads at most one session, so the <c>HGETALL</c>s beyond the script calls are counted as sent: exact when
    /// every script call of the delta reads one (loads, commits of an existing session, renewals), an undercount
    /// when a script that reads none (a creating commit, a cache script) shares the delta with a plain read.
    /// </summary>
    public long TopLevelCommands(IEnumerable<string> commandsRunByScripts)
    {
        var inner = new HashSet<string>(commandsRunByScripts.Concat(ConnectionHousekeeping), StringComparer.OrdinalIgnoreCase);
        var plainReads = inner.Contains("hgetall") ? Math.Max(0, this["hgetall"] - this["eval"] - this["evalsha"]) : 0;
        return _calls.Where(c => !inner.Contains(c.Key)).Sum(c => c.Value) + plainReads;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        _calls.Count == 0 ? "(none)" : string.Join(", ", _calls.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}={c.Value}"));
}
