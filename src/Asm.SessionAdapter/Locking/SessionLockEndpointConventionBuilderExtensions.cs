using Asm.SessionAdapter;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Chooses the session lock mode of endpoints.</summary>
public static class SessionLockEndpointConventionBuilderExtensions
{
    /// <summary>Makes the endpoints lock their session with <paramref name="mode"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="mode"/> is not a <see cref="SessionLockMode"/>.</exception>
    public static TBuilder WithSessionLock<TBuilder>(this TBuilder builder, SessionLockMode mode)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        var metadata = new SessionLockAttribute(mode);
        builder.Add(endpoint => endpoint.Metadata.Add(metadata));
        return builder;
    }
}
