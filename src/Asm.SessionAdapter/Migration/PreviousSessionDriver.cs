using Asm.Caching.Drivers.InMemory;
using Asm.Caching.Health;
using Asm.Caching.Sessions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Asm.SessionAdapter.Migration;

/// <summary>
/// The driver sessions are moved from (see <c>MigrateFrom</c>), built in a service provider of its own so that it
/// may be the same kind of driver as the new one (Redis to Redis Cluster) without the two sharing options.
/// </summary>
internal sealed class PreviousSessionDriver : IPreviousStorage, IAsyncDisposable, IDisposable
{
    private readonly ServiceProvider _provider;

    public PreviousSessionDriver(IServiceProvider application, Action<IAsmStorageBuilder> configure)
    {
        var services = new ServiceCollection();
        services.AddSingleton(application.GetRequiredService<TimeProvider>());
        services.AddSingleton(application.GetRequiredService<ILoggerFactory>());
        services.AddLogging();
        services.AddOptions();
        configure(new AsmStorageBuilder(services));
        _provider = services.BuildServiceProvider();
        Driver = _provider.GetService<ISessionDriver>() ?? throw new InvalidOperationException(
            "MigrateFrom(previous => ...) chose no driver: name the driver sessions are moved from, for example " +
            "previous => previous.UseFileSystemDriver(\"/var/lib/app/sessions\").");
        if (Driver is InMemoryDriver && services.Last(d => d.ServiceType == typeof(InMemoryDriver)).ImplementationInstance is null)
        {
            // Built here, the in-memory store is a new, empty one: the old app's sessions ended with its process. (Tests
            // register the old app's own instance, the one case where there is something to move.)
            _provider.Dispose();
            throw new InvalidOperationException(
                "MigrateFrom(previous => previous.UseInMemoryDriver()) names an in-memory store, which lived in the previous app's " +
                "process and ended with it: the previous driver would be a new, empty store, and no session could be moved. " +
                "Remove MigrateFrom (in-memory sessions do not outlive a restart), or name the storage sessions were kept in.");
        }

        if (Driver is not ISessionTransferDriver)
        {
            throw new InvalidOperationException(
                $"MigrateFrom needs a previous driver that implements {nameof(ISessionTransferDriver)}; {Driver.GetType().Name} does not.");
        }
    }

    public ISessionDriver Driver { get; }

    public ValueTask DisposeAsync() => _provider.DisposeAsync();

    /// <summary>For an application container disposed synchronously, which refuses a singleton it can only dispose asynchronously.</summary>
    public void Dispose() => _provider.Dispose();
}
