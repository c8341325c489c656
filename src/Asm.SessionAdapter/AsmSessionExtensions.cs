using Asm.SessionAdapter;

namespace Microsoft.AspNetCore.Http;

/// <summary><see cref="IAsmSession"/> members on any <see cref="ISession"/>.</summary>
/// <remarks>They throw <see cref="InvalidOperationException"/> when the session is not an Asm session.</remarks>
public static class AsmSessionExtensions
{
    extension(ISession session)
    {
        /// <inheritdoc cref="IAsmSession.LockMode"/>
        public SessionLockMode LockMode => AsAsm(session).LockMode;

        /// <inheritdoc cref="IAsmSession.AcquireWriteLockAsync"/>
        public Task AcquireWriteLockAsync(CancellationToken cancellationToken = default) =>
            AsAsm(session).AcquireWriteLockAsync(cancellationToken);

        /// <inheritdoc cref="IAsmSession.DiscardChanges"/>
        public void DiscardChanges() => AsAsm(session).DiscardChanges();

        /// <inheritdoc cref="IAsmSession.RegenerateIdAsync"/>
        public Task RegenerateIdAsync(CancellationToken cancellationToken = default) =>
            AsAsm(session).RegenerateIdAsync(cancellationToken);

        /// <inheritdoc cref="IAsmSession.UserId"/>
        public string? UserId => AsAsm(session).UserId;

        /// <inheritdoc cref="IAsmSession.BindUserAsync"/>
        public Task BindUserAsync(string userId, CancellationToken cancellationToken = default) =>
            AsAsm(session).BindUserAsync(userId, cancellationToken);

        /// <inheritdoc cref="IAsmSession.DestroyAsync"/>
        public Task DestroyAsync(CancellationToken cancellationToken = default) =>
            AsAsm(session).DestroyAsync(cancellationToken);
    }

    private static IAsmSession AsAsm(ISession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        return session as IAsmSession ?? throw new InvalidOperationException(
            $"This session is a {session.GetType().Name}, not an Asm session. Register Asm with services.AddAsmSession() " +
            "instead of services.AddSession(), and keep app.UseSession() in the pipeline.");
    }
}
