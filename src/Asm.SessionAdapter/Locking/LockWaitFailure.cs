namespace Asm.SessionAdapter;

/// <summary>What a request does when it cannot get its session lock within <see cref="AsmSessionOptions.LockWaitTimeout"/>.</summary>
public enum LockWaitFailure
{
    /// <summary>Throw <see cref="SessionLockTimeoutException"/>. The default.</summary>
    Throw,

    /// <summary>Continue with a read-only session that shows the last committed state; writes throw.</summary>
    ContinueReadOnly,
}
