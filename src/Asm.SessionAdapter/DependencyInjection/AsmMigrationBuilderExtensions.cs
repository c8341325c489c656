using Asm.Caching.Health;
using Asm.SessionAdapter;
using Asm.SessionAdapter.Migration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Moves sessions from the driver an application used before to the one it uses now, without logging anyone out.</summary>
public static class AsmMigrationBuilderExtensions
{
    /// <summary>
    /// Looks sessions that the chosen driver does not know up in the driver <paramref name="previous"/> configures,
    /// and moves each one over, once, on its first use: values, profiles, zombie keys and timeouts. New sessions are
    /// created in the chosen driver only, and a moved session's previous copy is ended, so that a late write to it
    /// fails rather than being lost.
    /// </summary>
    /// <param name="builder">The Asm session builder.</param>
    /// <param name="previous">Chooses the previous driver, for example <c>previous => previous.UseFileSystemDriver("/var/lib/app/sessions")</c>.</param>
    /// <returns>The builder.</returns>
    public static IAsmSessionBuilder MigrateFrom(this IAsmSessionBuilder builder, Action<IAsmStorageBuilder> previous) =>
        builder.MigrateFrom(previous, _ => { });

    /// <summary>
    /// Moves sessions from the driver <paramref name="previous"/> configures, as <see cref="MigrateFrom(IAsmSessionBuilder, Action{IAsmStorageBuilder})"/>,
    /// and, when <paramref name="configure"/> turns on <see cref="AsmMigrationOptions.MoveInBackground"/>, moves the
    /// rest in the background.
    /// </summary>
    /// <param name="builder">The Asm session builder.</param>
    /// <param name="previous">Chooses the previous driver.</param>
    /// <param name="configure">Sets the <see cref="AsmMigrationOptions"/>.</param>
    /// <returns>The builder.</returns>
    public static IAsmSessionBuilder MigrateFrom(this IAsmSessionBuilder builder, Action<IAsmStorageBuilder> previous, Action<AsmMigrationOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(previous);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.Replace(ServiceDescriptor.Singleton(services => new PreviousSessionDriver(services, previous)));
        builder.Services.TryAddSingleton<IPreviousStorage>(services => services.GetRequiredService<PreviousSessionDriver>());
        builder.Services.AddOptions<AsmMigrationOptions>().Configure(configure).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, BackgroundSessionMover>());
        return builder;
    }
}
