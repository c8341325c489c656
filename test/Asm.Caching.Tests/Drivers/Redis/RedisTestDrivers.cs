using System.Diagnostics;
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
    /// <paramref name="nodes"/>, and a release published there has woken it: from then on a release wakes its
    /// waiters, and a test may time the wake-up.
    /// </summary>
    public async Task WhenSubscribedAsync(RedisDriver driver, params IEnumerable<RedisServer> nodes)
    {
        string clientName;
        lock (_drivers)
        {
            clientName = _clientNames[driver];
        }

        var on = nodes.ToList();
        await RedisSubscribers.WaitForAsync(on, clientName);
        await WhenReleasesArriveAsync(driver, on[0]);
    }

    /// <summary>
    /// Completes once a release published on <paramref name="node"/> wakes a waiter of <paramref name="driver"/>.
    /// A client's subscription count cannot tell: StackExchange.Redis subscribes its subscription connection to its
    /// configuration channel as it connects, before the driver's release channel, so a probe is published (for a
    /// session nobody has) until one arrives; throws after a minute.
    /// </summary>
    public static async Task WhenReleasesArriveAsync(RedisDriver driver, RedisServer node)
    {
        var bound = TimeSpan.FromSeconds(2);
        var waited = Stopwatch.StartNew();
        while (true)
        {
            // A probe of its own per round (a driver on a fake clock keeps an earlier round's waiter). A wait that ran
            // to its bound took at least the bound (timers never fire early): one that ended sooner was woken.
            var probe = $"probe-{Guid.NewGuid():N}";
            var round = Stopwatch.StartNew();
            var wait = driver.WaitForReleaseAsync(probe, bound, CancellationToken.None);
            await node.ExecuteAsync("PUBLISH", driver.ReleaseChannel, probe);
            try
            {
                await wait.WaitAsync(bound);
            }
            catch (TimeoutException)
            {
                // Not woken within the bound on the real clock.
            }

            if (wait.IsCompleted && round.Elapsed < bound)
            {
                return;
            }

            if (waited.Elapsed > TimeSpan.FromMinutes(1))
            {
                throw new TimeoutException($"No release published on the driver's channel reached it in {waited.Elapsed.TotalSeconds:0} s.");
            }
        }
    }

    /// <summary>
    /// The keys <paramref name="driver"/> gives session <paramref name="sessionId"/> (its hash, waiter mark and end-check
    /// set) and the index of <paramref name="userId"/>, and its release channel, with and without <see cref="InstanceName"/>.
    /// </summary>
    public IEnumerable<string> StorageNamesOf(RedisDriver driver, string sessionId, string userId) =>
        new[] { driver.SessionKeyOf(sessionId), driver.WaiterKeyOf(sessionId), driver.EndCheckKeyOf(sessionId), driver.UserIndexKeyOf(userId), driver.ReleaseChannel }
            .SelectMany(name => new[] { name, name[InstanceName.Length..] });

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
