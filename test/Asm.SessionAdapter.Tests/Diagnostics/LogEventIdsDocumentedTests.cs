using System.Reflection;
using System.Text.RegularExpressions;
using Asm.Caching.Drivers.Redis;
using Asm.Caching.Sessions;
using Asm.SessionAdapter;
using Microsoft.Extensions.Logging;

namespace Asm.SessionAdapter.Tests.Diagnostics;

/// <summary>docs/observability.md lists every log event Asm writes, with its level: operators alert on these ids.</summary>
public sealed partial class LogEventIdsDocumentedTests
{
    [Fact]
    public void EveryLogEventOfEveryPackage_IsListedInTheObservabilityDocsWithItsIdAndLevel()
    {
        var logged = new[] { typeof(AsmSessionOptions).Assembly, typeof(ISessionDriver).Assembly, typeof(RedisDriverOptions).Assembly }
            .SelectMany(assembly => assembly.GetTypes())
            .SelectMany(type => type.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(method => method.GetCustomAttribute<LoggerMessageAttribute>())
            .OfType<LoggerMessageAttribute>()
            .Select(message => $"{message.EventId} {message.Level}")
            .Order(StringComparer.Ordinal)
            .ToList();

        var docs = File.ReadAllLines(Path.Combine(RepositoryRoot(), "docs", "observability.md"));
        var listed = docs
            .Select(line => EventRow().Match(line))
            .Where(match => match.Success)
            .Select(match => $"{match.Groups["id"].Value} {match.Groups["level"].Value}")
            .Order(StringComparer.Ordinal)
            .ToList();

        Assert.NotEmpty(logged);
        Assert.Equal(logged, listed);
    }

    /// <summary>A row of the events table: <c>| 12 | Error | message |</c>.</summary>
    [GeneratedRegex(@"^\| (?<id>\d+) \| (?<level>Trace|Debug|Information|Warning|Error|Critical) \|")]
    private static partial Regex EventRow();

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Asm.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("Asm.sln was not found above " + AppContext.BaseDirectory);
    }
}
