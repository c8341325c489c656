namespace Asm.Caching.Sessions;

/// <summary>
/// Told by a driver that the release of a session's lock (a releasing commit, or a release) is on its way to storage,
/// ahead of every command the process sends to that session after it: a driver whose storage runs the commands of one
/// process to one session in the order they were sent (the Redis driver: one connection per node) tells it as soon as
/// the release is sent, before its answer; a driver that cannot promise that order never does.
/// </summary>
/// <remarks>
/// A session releasing its lock passes the lock's turn to the process's next waiting request here, so that request's
/// load reaches storage right behind the release instead of a round trip later. The order saves that wait and nothing
/// more: storage judges every lease, so a load that overtakes a release all the same (one the driver has to send again)
/// finds the lock held and waits for it, as it does when the release keeps the lock for a waiter of another process
/// (the Redis driver's waiting line). A driver may leave it untold for a release: the Redis driver does for a commit
/// under <c>WaitForReplicas</c>, which counts only once the replicas have it. The holder of the lock is the observer
/// itself, so telling it allocates nothing.
/// </remarks>
public interface ILockReleaseObserver
{
    /// <summary>The release is sent; its answer has not come yet. Called at most once per release; must not throw.</summary>
    void ReleaseSent();
}
