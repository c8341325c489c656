namespace Microsoft.Extensions.DependencyInjection;

internal sealed class AsmSessionBuilder(IServiceCollection services) : IAsmSessionBuilder
{
    public IServiceCollection Services { get; } = services;
}
