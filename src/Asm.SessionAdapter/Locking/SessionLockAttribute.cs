namespace Asm.SessionAdapter;

/// <summary>
/// Chooses how an endpoint locks its session: on controllers, actions, Razor Page models and minimal API handlers.
/// </summary>
/// <param name="mode">The lock mode.</param>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method | AttributeTargets.Delegate, AllowMultiple = false, Inherited = true)]
public sealed class SessionLockAttribute(SessionLockMode mode) : Attribute, ISessionLockMetadata
{
    /// <inheritdoc/>
    public SessionLockMode Mode { get; } = mode;
}
