using System.ComponentModel.DataAnnotations;
using StackExchange.Redis;

namespace Asm.Caching.Drivers.Redis;

/// <summary>Options of the Redis driver, shaped like the stock <c>RedisCacheOptions</c>.</summary>
/// <remarks>
/// Set one of <see cref="ConnectionMultiplexerFactory"/>, <see cref="ConfigurationOptions"/> or
/// <see cref="Configuration"/> (the first one set wins, in that order, as in <c>RedisCacheOptions</c>); they are
/// validated at start-up. The driver connects on its first operation and reconnects by itself; while Redis cannot be
/// reached, operations throw <see cref="RedisDriverException"/> at once.
/// </remarks>
public sealed class RedisDriverOptions
{
    /// <summary>
    /// The StackExchange.Redis configuration string: one endpoint (<c>127.0.0.1:6379</c>), several (the nodes of a
    /// Redis Cluster), or the sentinels followed by <c>serviceName=...</c> (Redis Sentinel), then options such as
    /// <c>password=...</c> or <c>ssl=true</c>, which are passed to the client untouched. On the connection the
    /// driver makes, <c>abortConnect=false</c> (keep reconnecting after a failure) and the client's
    /// <c>BacklogPolicy.FailFast</c> (fail at once while disconnected) are always applied, and <c>asyncTimeout</c> is
    /// raised to twice <see cref="OperationTimeout"/> when it is shorter.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: this, <see cref="ConfigurationOptions"/> or <see cref="ConnectionMultiplexerFactory"/> must be set.</value>
    public string? Configuration { get; set; }

    /// <summary>
    /// The StackExchange.Redis options to connect with, for settings a configuration string cannot carry
    /// (certificates, a <c>SocketManager</c>, a tunnel). Preferred over <see cref="Configuration"/>. The driver
    /// connects with a copy, to which it applies what <see cref="Configuration"/> describes.
    /// </summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public ConfigurationOptions? ConfigurationOptions { get; set; }

    /// <summary>
    /// The prefix of every key and channel the driver uses, so that several applications can share one Redis.
    /// Sessions live at <c>&lt;InstanceName&gt;s:{&lt;session id&gt;}</c>, their lock waiters' marks at
    /// <c>&lt;InstanceName&gt;w:{&lt;session id&gt;}</c>, users' session indexes at <c>&lt;InstanceName&gt;u:</c>...,
    /// session-end checks at <c>&lt;InstanceName&gt;e:</c>..., cache entries at
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
    /// How many replicas must have a session commit before it counts as done: after each commit the driver sends
    /// Redis <c>WAIT</c> and, when fewer replicas acknowledge within <see cref="OperationTimeout"/>, fails the commit
    /// with <see cref="RedisDriverException"/> (the write stays on the master). Redis replicates asynchronously: with
    /// 0, a commit acknowledged by a master that dies before its replica copied it is lost at failover. <c>WAIT</c>
    /// narrows that window; it does not make Redis strongly consistent (see docs/drivers.md).
    /// </summary>
    /// <value>The default value is 0: commits do not wait for replicas.</value>
    [Range(0, 16, ErrorMessage = "RedisDriverOptions.WaitForReplicas must be between 0 and 16.")]
    public int WaitForReplicas { get; set; }

    /// <summary>
    /// Gives the driver the application's own connection, for an application that shares one
    /// <see cref="IConnectionMultiplexer"/> between several uses; preferred over <see cref="ConfigurationOptions"/> and
    /// <see cref="Configuration"/>. The driver calls it on its first operation (again after a failure), never
    /// disposes what it returns, and when disposed takes its lock-release subscription and event handlers off it.
    /// Create the multiplexer with <c>AbortOnConnectFail = false</c> so that it reconnects by itself, and with
    /// <c>BacklogPolicy.FailFast</c> for operations that fail at once while Redis is down.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: the driver connects with <see cref="ConfigurationOptions"/> or <see cref="Configuration"/>.</value>
    public Func<Task<IConnectionMultiplexer>>? ConnectionMultiplexerFactory { get; set; }
}
