using System.Diagnostics.CodeAnalysis;
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
            if (options.ConfigurationOptions is { } configurationOptions)
            {
                CheckEndPoints(configurationOptions, "RedisDriverOptions.ConfigurationOptions", failures);
            }
            else if (string.IsNullOrWhiteSpace(options.Configuration))
            {
                failures.Add(
                    "RedisDriverOptions.Configuration must name the Redis endpoint(s), for example \"127.0.0.1:6379\", " +
                    "unless RedisDriverOptions.ConfigurationOptions or RedisDriverOptions.ConnectionMultiplexerFactory is set.");
            }
            else if (TryParse(options.Configuration, out var parsed, out var error))
            {
                CheckEndPoints(parsed, "RedisDriverOptions.Configuration", failures);
            }
            else
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

    private static void CheckEndPoints(ConfigurationOptions configuration, string option, List<string> failures)
    {
        if (configuration.EndPoints.Count > 0)
        {
            return;
        }

        failures.Add(string.IsNullOrEmpty(configuration.ServiceName)
            ? $"{option} names no endpoint; name the Redis server(s), for example \"127.0.0.1:6379\"."
            : $"{option} names serviceName={configuration.ServiceName} but no sentinel; name the sentinels before it, " +
              "for example \"10.0.0.1:26379,10.0.0.2:26379,serviceName=" + configuration.ServiceName + "\".");
    }

    private static bool TryParse(string configuration, [NotNullWhen(true)] out ConfigurationOptions? parsed, out string error)
    {
        try
        {
            parsed = ConfigurationOptions.Parse(configuration);
            error = "";
            return true;
        }
        catch (ArgumentException ex)
        {
            // The client's message names the keyword at fault, never the value of another (a password stays out).
            parsed = null;
            error = ex.Message;
            return false;
        }
    }
}
