using Asm.Caching.Drivers.Redis;
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

    public string InstanceName { get; } = $"asm-test:{Guid.NewGuid():N}:";

    public RedisDriver Create(TimeProvider timeProvider, ILogger<RedisDriver>? logger = null, Action<RedisDriverOptions>? configure = null)
    {
        var options = new RedisDriverOptions { Configuration = configuration, InstanceName = InstanceName };
        configure?.Invoke(options);
        var driver = new RedisDriver(Options.Create(options), timeProvider, logger ?? NullLogger<RedisDriver>.Instance);
        lock (_drivers)
        {
            _drivers.Add(driver);
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

    public void Dispose()
    {
        lock (_drivers)
        {
            foreach (var driver in _drivers)
            {
                driver.Dispose();
            }

            _drivers.Clear();
        }
    }
}
