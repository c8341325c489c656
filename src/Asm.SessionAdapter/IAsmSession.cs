using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>
/// The session Asm gives every request as <c>HttpContext.Session</c>: an <see cref="ISession"/> with locking,
/// ID regeneration and destroy. The same members are extension methods on <see cref="ISession"/>.
/// </summary>
public interface IAsmSession : ISession
{
    /// <summary>How this request locks the session (the endpoint's mode, or <see cref="SessionLockMode.Exclusive"/>
    /// once <see cref="AcquireWriteLockAsync"/> escalated it).</summary>
    SessionLockMode LockMode { get; }

    /// <summary>
    /// Takes the session lock now (from <see cref="SessionLockMode.ReadOnly"/>, <see cref="SessionLockMode.LockOnWrite"/>
    /// or <see cref="SessionLockMode.Lockless"/>) and reloads the latest data; this request's pending changes are kept.
    /// </summary>
    Task AcquireWriteLockAsync(CancellationToken cancellationToken = default);

    /// <summary>Forgets every change this request made: nothing it changed is written.</summary>
    void DiscardChanges();

    /// <summary>
    /// Gives the session a new key and sends it in the response cookie. The old key keeps working as a zombie for
    /// <see cref="AsmSessionOptions.ZombieLifetime"/>, so requests already in flight are not lost.
    /// </summary>
    Task RegenerateIdAsync(CancellationToken cancellationToken = default);

    /// <summary>The user the session is bound to (by <see cref="BindUserAsync"/>), or <see langword="null"/>.</summary>
    string? UserId { get; }

    /// <summary>
    /// Binds the session to <paramref name="userId"/>, records it in the user's index (see <see cref="IAsmSessionManager"/>)
    /// and gives it a new key in the same step (the old key works as a zombie, as after <see cref="RegenerateIdAsync"/>).
    /// Binding to another user replaces the binding; <see cref="DestroyAsync"/> removes it. When the user would have more
    /// than <see cref="AsmSessionOptions.MaxSessionsPerUser"/> sessions, the least recently used others are ended.
    /// </summary>
    /// <param name="userId">Any string of 1 to <see cref="AsmSessionOptions.MaxUserIdLength"/> characters, not only whitespace.</param>
    /// <param name="cancellationToken">Cancels the storage calls.</param>
    /// <exception cref="ArgumentException"><paramref name="userId"/> is empty, whitespace, too long or not well-formed UTF-16.</exception>
    /// <exception cref="InvalidOperationException">The response has started, or the session ended while the request ran.</exception>
    /// <exception cref="NotSupportedException">The session driver does not implement user tracking.</exception>
    Task BindUserAsync(string userId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes everything the session stored and expires the cookie. Commits of requests still in flight for the
    /// session are refused. Values set after this call start a new session.
    /// </summary>
    Task DestroyAsync(CancellationToken cancellationToken = default);
}
