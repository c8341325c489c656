namespace Asm.SessionAdapter;

/// <summary>A request waited <see cref="AsmSessionOptions.LockWaitTimeout"/> for its session lock and did not get it.</summary>
public sealed class SessionLockTimeoutException : TimeoutException
{
    /// <summary>Creates the exception.</summary>
    public SessionLockTimeoutException(string message)
        : base(message)
    {
    }
}
