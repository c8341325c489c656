namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Configures Asm sessions: choose the driver with <c>UseInMemoryDriver</c>, <c>UseFileSystemDriver</c> or <c>UseRedisDriver</c>.</summary>
public interface IAsmSessionBuilder : IAsmStorageBuilder
{
}
