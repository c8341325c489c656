using System.ComponentModel.DataAnnotations;
using StackExchange.Redis;

namespace Asm.Caching.Drivers.Redis;

/// <summary>Options of the Redis driver, shaped like the stock <c>RedisCacheOptions</c>.</summary>
/// <remarks>
/// Set <see cref="Configuration"/> or <see cref="ConnectionMultiplexerFactory"/>; they are validated at start-up.
/// The driver connects on its first operation and reconnects by itself; while Redis cannot be reached, operations
/// throw <see cref="RedisDriverException"/>.
/// </remarks>
public sealed class RedisDriverOptions
{
    /// <summary>
    /// The StackExchange.Redis configuration string: one endpoint (<c>127.0.0.1:6379</c>) or several (the nodes of a
    /// Redis Cluster), followed by options such as <c>password=...</c> or <c>ssl=true</c>.
    /// <c>abortConnect=false</c> is always applied, so that the driver keeps reconnecting after a failure.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: either this or <see cref="ConnectionMultiplexerFactory"/> must be set.</value>
    public string? Configuration { get; set; }

    /// <summary>
    /// The prefix of every key and channel the driver uses, so that several applications can share one Redis.
    /// Sessions live at <c>&lt;InstanceName&gt;s:{&lt;session id&gt;}</c>, cache entries at
    /// <c>&lt;InstanceName&gt;c:&lt;key&gt;</c>, and lock releases are published on
    /// <c>&lt;InstanceName&gt;asm:released</c>. It must not contain <c>{</c> or <c>}</c>, which would pin every
    /// key to one Cluster slot.
    /// </summary>
    /// <value>The default value is <c>"asm:"</c>.</value>
    public string InstanceName { get; set; } = "asm:";

    /// <summary>
    /// How long an operation waits for Redis before it fails with <see cref="RedisDriverException"/> (its outcome is
    /// then unknown). It bounds the wait for a Redis that hangs rather than refuses connections; the request's own
    /// <see cref="CancellationToken"/> ends the wait earlier.
    /// </summary>
    /// <value>The default value is 5 seconds.</value>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:05:00", ErrorMessage = "RedisDriverOptions.OperationTimeout must be between 1 millisecond and 5 minutes.")]
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Creates the connection instead of <see cref="Configuration"/>, for an application that shares one
    /// <see cref="IConnectionMultiplexer"/> between several uses. The driver calls it on its first operation (again
    /// after a failure) and does not dispose what it returns. Create the multiplexer with
    /// <c>AbortOnConnectFail = false</c> so that it reconnects by itself.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: the driver connects with <see cref="Configuration"/>.</value>
    public Func<Task<IConnectionMultiplexer>>? ConnectionMultiplexerFactory { get; set; }
}
