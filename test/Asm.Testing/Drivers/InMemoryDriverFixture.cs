using Microsoft.Extensions.DependencyInjection;

namespace Asm.Testing.Drivers;

/// <summary>The in-memory driver: each app has its own store.</summary>
public sealed class InMemoryDriverFixture : IDriverFixture
{
    public string Name => "in-memory";

    public bool IsShared => false;

    public void Use(IAsmStorageBuilder builder, string scope) => builder.UseInMemoryDriver();

    public IReadOnlyList<string> ChildArguments(string scope) => throw new NotSupportedException("The in-memory driver is not shared between processes.");

    public Task CorruptSessionAsync(string scope, string sessionId) =>
        throw new NotSupportedException("The in-memory driver keeps objects, not a serialized form to corrupt.");

    public Task<byte[]> DumpAsync(string scope) => throw new NotSupportedException("The in-memory driver has no stored bytes.");
}
