using Asm.Caching.Drivers.Redis;
using Asm.Testing.Redis;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>
/// Creates Redis drivers for one test: all under one fresh <see cref="RedisDriverOptions.InstanceName"/>, so that
/// tests sharing a server never see each other's data, and all disposed with the test.
/// </summary>
internal sealed class RedisTestDrivers(string configuration) : IDisposable
{
    private readonly List<RedisDriver> _drivers = [];
    private readonly Dictionary<RedisDriver, string> _clientNames = [];

    public string InstanceName { get; } = $"asm-test:{Guid.NewGuid():N}:";

    public RedisDriver Create(TimeProvider timeProvider, ILogger<RedisDriver>? logger = null, Action<RedisDriverOptions>? configure = null)
    {
        var clientName = $"asm-test-{Guid.NewGuid():N}";
        var options = new RedisDriverOptions { Configuration = $"{configuration},name={clientName}", InstanceName = InstanceName };
        configure?.Invoke(options);
        var driver = new RedisDriver(Options.Create(options), timeProvider, logger ?? NullLogger<RedisDriver>.Instance);
        lock (_drivers)
        {
            _drivers.Add(driver);
            _clientNames.Add(driver, clientName);
        }

        return driver;
    }

    /// <summary>
    /// A driver that judges leases by the time the caller passes rather than Redis's own clock, for tests that compare
    /// stored fields or outcomes with the record's rules on a fake clock.
    /// </summary>
    public RedisDriver CreateWithLeasesOnCallerClock()
    {
        var driver = Create(TimeProvider.System);
        driver.LeasesOnCallerClock = true;
        return driver;
    }

    /// <summary>
    /// Completes once <paramref name="driver"/> (connected) has its lock-release subscription on one of
    /// <paramref name="nodes"/>: from then on a release wakes its waiters, and a test may time the wake-up.
    /// </summary>
    public Task WhenSubscribedAsync(RedisDriver driver, params IEnumerable<RedisServer> nodes)
    {
        string clientName;
        lock (_drivers)
        {
            clientName = _clientNames[driver];
        }

        return RedisSubscribers.WaitForAsync(nodes, clientName);
    }

    public void Dispose()
    {
        lock (_drivers)
        {
            foreach (var driver in _drivers)
            {
                driver.Dispose();
            }

            _drivers.Clear();
            _clientNames.Clear();
        }
    }
}
