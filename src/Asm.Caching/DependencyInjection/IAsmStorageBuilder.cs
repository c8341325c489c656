namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Chooses the storage driver of Asm sessions or of Asm's <c>IDistributedCache</c>.</summary>
public interface IAsmStorageBuilder
{
    /// <summary>The services being configured.</summary>
    IServiceCollection Services { get; }
}
