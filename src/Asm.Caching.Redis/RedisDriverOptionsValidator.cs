using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Asm.Caching.Drivers.Redis;

/// <summary>Checks <see cref="RedisDriverOptions"/> at start-up.</summary>
internal sealed class RedisDriverOptionsValidator : IValidateOptions<RedisDriverOptions>
{
    public ValidateOptionsResult Validate(string? name, RedisDriverOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.ConnectionMultiplexerFactory is null)
        {
            if (string.IsNullOrWhiteSpace(options.Configuration))
            {
                failures.Add(
                    "RedisDriverOptions.Configuration must name the Redis endpoint(s), for example \"127.0.0.1:6379\", " +
                    "unless RedisDriverOptions.ConnectionMultiplexerFactory is set.");
            }
            else if (!TryParse(options.Configuration, out var error))
            {
                failures.Add($"RedisDriverOptions.Configuration is not a valid StackExchange.Redis configuration string: {error}");
            }
        }

        if (options.InstanceName is null)
        {
            failures.Add("RedisDriverOptions.InstanceName must not be null; use \"\" for no prefix.");
        }
        else if (options.InstanceName.AsSpan().IndexOfAny('{', '}') >= 0)
        {
            failures.Add(
                "RedisDriverOptions.InstanceName must not contain '{' or '}': a brace in the prefix becomes the Cluster " +
                "hash tag of every key and puts all sessions in one slot.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static bool TryParse(string configuration, out string error)
    {
        try
        {
            var parsed = ConfigurationOptions.Parse(configuration);
            if (parsed.EndPoints.Count == 0)
            {
                error = "it names no endpoint.";
                return false;
            }

            error = "";
            return true;
        }
        catch (ArgumentException ex)
        {
            error = ex.Message;
            return false;
        }
    }
}
