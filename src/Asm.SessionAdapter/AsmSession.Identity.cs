using Asm.Caching.Sessions;
using Asm.SessionAdapter.Sessions;
using Asm.SessionAdapter.Users;

namespace Asm.SessionAdapter;

/// <summary>The session's identity: its key regenerated, bound to a user, or destroyed.</summary>
internal sealed partial class AsmSession
{
    public async Task RegenerateIdAsync(CancellationToken cancellationToken = default)
    {
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        EnsureAvailable();
        EnsureWritable();
        EnsureNotServedByZombie("regenerated");
        _cookie.EnsureResponseNotStarted("regenerated");
        var newKey = _key.WithNewSecret();
        if (_stored)
        {
            var status = await RegenerateStoredAsync(newKey, cancellationToken).ConfigureAwait(false);
            if (status != SessionCommitStatus.Committed)
            {
                throw new InvalidOperationException(
                    $"Session {Hash} was destroyed or expired while this request ran, so its key cannot be regenerated.");
            }

            _cookie.SendKey();
        }
        else if (_cookie.SendsKey)
        {
            _cookie.SendKey();
        }

        _key = newKey;
        _telemetry.Regenerated(_key.Id);
    }

    /// <summary>
    /// Regenerates the stored session to <paramref name="newKey"/>. When the storage's answer is lost (a timeout, a
    /// dropped connection), the storage may have applied it all the same: the browser would then keep the old key, a
    /// zombie, from which a login tried again is refused for the whole window. One read with the new key tells: found,
    /// the regeneration took place and the new key is sent; otherwise the failure stands.
    /// </summary>
    private async Task<SessionCommitStatus> RegenerateStoredAsync(SessionKey newKey, CancellationToken cancellationToken)
    {
        try
        {
            return await Storage.RegenerateAsync(RegenerateRequest(newKey), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SessionStorageException && !cancellationToken.IsCancellationRequested)
        {
            if (!await IsCurrentKeyAsync(newKey).ConfigureAwait(false))
            {
                throw;
            }

            _telemetry.RegenerateAnswerLost(_key.Id, ex);
            return SessionCommitStatus.Committed;
        }
    }

    /// <summary>Whether the storage now opens the session with <paramref name="key"/>; <see langword="false"/> when it cannot be asked.</summary>
    private async Task<bool> IsCurrentKeyAsync(SessionKey key)
    {
        try
        {
            return (await LoadUnlockedAsync(key, CancellationToken.None).ConfigureAwait(false)).Status == SessionLoadStatus.Found;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SessionStorageException)
        {
            return false;
        }
    }

    public async Task BindUserAsync(string userId, CancellationToken cancellationToken = default)
    {
        SessionLifecycle.ValidateUserId(userId, nameof(userId));
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        EnsureAvailable();
        EnsureWritable();
        EnsureNotServedByZombie("bound to a user");
        _cookie.EnsureResponseNotStarted("bound to a user");
        if (!_stored)
        {
            // The user's index lists stored sessions: store this one now, with what the request has written so far.
            try
            {
                await CreateAsync(cancellationToken).ConfigureAwait(false);
            }
            catch when (_stored)
            {
                // Stored, then refused by an OnSessionCreated handler (it threw): the login fails with the handler's
                // exception, and the session stored for it is ended at once, not left stored with no cookie naming it.
                // Only that handler throws once the session is stored (whatever it throws, a cancellation too): the
                // storage's failures and the request's token come before, and tracking the new session logs its own.
                await EndRefusedCreationAsync().ConfigureAwait(false);
                throw;
            }

            if (!_stored)
            {
                throw new InvalidOperationException($"Session {Hash} could not be stored, so it cannot be bound to a user.");
            }

            _cookie.SendKey();
        }

        var newKey = _key.WithNewSecret();
        var request = RegenerateRequest(newKey);

        // The session takes its new key as soon as the bind's own step is stored: a failure of the index steps after it
        // then leaves it usable by this browser (whose old key is a zombie), and a retry of the bind lists it.
        var status = await Storage.RunAsync(
            "binding", _key.Id, async ct => await _lifecycle.BindAsync(request, userId, () => Bound(newKey, userId), ct).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        if (status != SessionCommitStatus.Committed)
        {
            throw new InvalidOperationException(
                $"Session {Hash} was destroyed or expired while this request ran, so it cannot be bound to a user.");
        }
    }

    private void Bound(SessionKey newKey, string userId)
    {
        _key = newKey;
        _userId = userId;
        _cookie.SendKey();
        _telemetry.UserBound(_key.Id);
    }

    /// <summary>The regeneration of the stored session to <paramref name="newKey"/>, by a request of this client profile.</summary>
    private SessionRegenerateRequest RegenerateRequest(SessionKey newKey)
    {
        var now = _services.Time.GetUtcNow();
        return new SessionRegenerateRequest
        {
            Key = _key,
            NewSecret = newKey.Secret,
            Now = now,
            ZombieExpiresAt = now + Options.ZombieLifetime,
            Profile = _profiles.Current,
        };
    }

    public async Task DestroyAsync(CancellationToken cancellationToken = default)
    {
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        EnsureAvailable();
        if (_state == SessionState.Ended)
        {
            EnsureWritable();
        }

        await EndStoredAsync(cancellationToken).ConfigureAwait(false);
        if (!_keyReplacedWhileRunning)
        {
            // Not the cookie of a browser that logged in while this request ran: this request destroyed nothing of that session.
            _cookie.Delete();
        }
    }

    /// <summary>Ends the stored session for every key (its end reported as a destroy); the request goes on in a fresh one.</summary>
    private async Task EndStoredAsync(CancellationToken cancellationToken)
    {
        _lock.StopRenewal();
        if (_stored)
        {
            var id = _key.Id;
            var userId = _userId;
            await Storage.RunAsync(
                "destroying", id, ct => new ValueTask(_lifecycle.EndAsync(id, userId, SessionEndReason.Destroyed, ct)), cancellationToken).ConfigureAwait(false);
        }

        _lock.Forget();
        StartNewSession();
    }

    /// <summary>
    /// Ends the session <see cref="BindUserAsync"/> stored when an <c>OnSessionCreated</c> handler refused it, within
    /// the I/O timeout whatever the request's token says; when that fails, it is logged, and the session ends by its
    /// idle timeout. Either way the response does not name it.
    /// </summary>
    private async Task EndRefusedCreationAsync()
    {
        var id = _key.Id;
        try
        {
            await EndStoredAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SessionStorageException or OperationCanceledException)
        {
            _telemetry.RefusedCreationNotEnded(id, ex);
            _lock.Forget();
            StartNewSession();
        }
    }
}
