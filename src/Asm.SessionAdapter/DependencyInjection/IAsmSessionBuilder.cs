namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Configures Asm sessions: choose the driver with <c>UseInMemoryDriver</c>, <c>UseFileSystemDriver</c> or <c>UseRedisDriver</c> (package <c>Asm.Caching.Redis</c>).</summary>
public interface IAsmSessionBuilder : IAsmStorageBuilder
{
}
