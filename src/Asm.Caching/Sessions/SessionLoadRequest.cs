namespace Asm.Caching.Sessions;

/// <summary>What <see cref="ISessionDriver.LoadAsync"/> needs.</summary>
public sealed class SessionLoadRequest
{
    /// <summary>The key presented by the client.</summary>
    public required SessionKey Key { get; init; }

    /// <summary>The current time, from the application's <see cref="TimeProvider"/>.</summary>
    public required DateTimeOffset Now { get; init; }

    /// <summary>How far the idle expiry slides forward on this access.</summary>
    public required TimeSpan IdleTimeout { get; init; }

    /// <summary>The lease to acquire together with the load, or <see langword="null"/> to load without locking.</summary>
    public SessionLease? Lease { get; init; }
}
