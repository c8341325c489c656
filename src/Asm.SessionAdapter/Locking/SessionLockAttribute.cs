namespace Asm.SessionAdapter;

/// <summary>
/// Chooses how an endpoint locks its session: on controllers, actions, Razor Page models and minimal API handlers.
/// </summary>
/// <param name="mode">The lock mode.</param>
/// <exception cref="ArgumentOutOfRangeException"><paramref name="mode"/> is not a <see cref="SessionLockMode"/>.</exception>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method | AttributeTargets.Delegate, AllowMultiple = false, Inherited = true)]
public sealed class SessionLockAttribute(SessionLockMode mode) : Attribute, ISessionLockMetadata
{
    /// <inheritdoc/>
    public SessionLockMode Mode { get; } = Enum.IsDefined(mode)
        ? mode
        : throw new ArgumentOutOfRangeException(nameof(mode), mode, "Not a SessionLockMode: use Exclusive, LockOnWrite, Lockless or ReadOnly.");
}
