namespace Asm.Demo;

/// <summary>Where the demo keeps its sessions, chosen from the command line or the environment.</summary>
internal sealed class DemoStorage
{
    /// <summary>The environment variable that, like <c>--redis</c>, selects the Redis driver.</summary>
    public const string RedisVariable = "ASM_DEMO_REDIS";

    private readonly Action<IAsmSessionBuilder> _apply;

    private DemoStorage(string description, Action<IAsmSessionBuilder> apply)
    {
        Description = description;
        _apply = apply;
    }

    /// <summary>What the page and the console show, for example <c>files in .asm-demo-sessions</c>.</summary>
    public string Description { get; }

    /// <summary>
    /// Redis when <c>--redis</c> or <see cref="RedisVariable"/> gives a configuration string; memory with
    /// <paramref name="inMemory"/> (the <c>--memory</c> switch); otherwise files in <c>--sessions</c> (default
    /// <c>.asm-demo-sessions</c> under the content root).
    /// </summary>
    public static DemoStorage FromConfiguration(IConfiguration configuration, string contentRoot, bool inMemory)
    {
        var redis = configuration["redis"];
        if (string.IsNullOrWhiteSpace(redis))
        {
            redis = Environment.GetEnvironmentVariable(RedisVariable);
        }

        if (!string.IsNullOrWhiteSpace(redis))
        {
            return new DemoStorage($"Redis at {redis}", sessions => sessions.UseRedisDriver(redis));
        }

        if (inMemory)
        {
            return new DemoStorage("memory of this process", sessions => sessions.UseInMemoryDriver());
        }

        var directory = Path.GetFullPath(configuration["sessions"] is { Length: > 0 } sessions
            ? sessions
            : Path.Combine(contentRoot, ".asm-demo-sessions"));
        var shown = Path.GetRelativePath(contentRoot, directory);
        shown = shown.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(shown) ? directory : shown;
        return new DemoStorage($"files in {shown}", builder => builder.UseFileSystemDriver(directory));
    }

    /// <summary>Chooses the driver on the Asm builder.</summary>
    public void Apply(IAsmSessionBuilder sessions) => _apply(sessions);
}
