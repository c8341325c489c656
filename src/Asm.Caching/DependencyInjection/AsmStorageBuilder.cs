namespace Microsoft.Extensions.DependencyInjection;

internal sealed class AsmStorageBuilder(IServiceCollection services) : IAsmStorageBuilder
{
    public IServiceCollection Services { get; } = services;
}
