using Asm.Caching;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Sessions;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Session;

namespace Asm.SessionAdapter;

/// <summary>Committing: a new session created, a stored one's change set written, the lock released.</summary>
internal sealed partial class AsmSession
{
    private InvalidOperationException TooLarge() => new(
        $"Session {Hash} would hold more than AsmSessionOptions.MaxSessionSize ({Options.MaxSessionSize} bytes of values and their names); " +
        "nothing was written. Store less in the session, or raise MaxSessionSize.");

    /// <summary>
    /// Writes what this request changed since its last commit. An explicit call (the app's) keeps the lease, so that
    /// later changes are written under it; the middleware's final call (it removes the session feature first) also
    /// releases the lease and ends the request's session: from then on it never locks, and writes throw.
    /// </summary>
    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        if (_state is SessionState.Ended or SessionState.EndedNotLoaded || _lock.IsClosed)
        {
            // After the final commit there is nothing left to write (writes throw), and the request's HttpContext may
            // already be disposed or serve another request: it is not read again.
            return;
        }

        // As with the stock session, a commit of changes asked with a cancelled token fails before it writes anything,
        // and the changes stay for a later commit (the middleware's final one).
        if (_state == SessionState.Loaded && _values.HasValueChanges)
        {
            cancellationToken.ThrowIfCancellationRequested();
        }

        var final = _context.Features.Get<ISessionFeature>() is null;
        try
        {
            await CommitOnceAsync(final, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (final)
            {
                // The request is over and its lease given back: the next request of this process may have the lock. A
                // lease still held here was not this commit's to write with (an OnSessionCreated handler's write whose
                // commit did not finish, the handler threw; a load that held it as the hold closed, after this commit
                // found the session not stored): it is given back too, not renewed for ever.
                _lock.Close();
                await _lock.ReleaseAsync().ConfigureAwait(false);
            }
        }
    }

    private async Task CommitOnceAsync(bool final, CancellationToken cancellationToken)
    {
        var writable = _state == SessionState.Loaded;
        if (final)
        {
            _state = _state switch
            {
                SessionState.NotLoaded => SessionState.EndedNotLoaded,
                SessionState.Unavailable => SessionState.Unavailable,
                _ => SessionState.Ended,
            };

            // In this order, before the lease is read: a load or escalation from a task the request did not await either
            // held its lease before the hold closed (this commit releases it) or finds the hold closed, and the request
            // ended, and gives the lease back (SessionLockHolder.HoldOrGiveBackAsync).
            _lock.Close();
        }

        var hasValueWrites = writable && _values.HasValueChanges;
        var hasWrites = writable && _values.HasChanges;
        if (hasValueWrites && _values.StoredBytes() > Options.MaxSessionSize)
        {
            if (final && _lock.Forget(keepTurn: true) is { } held)
            {
                await Storage.ReleaseLockAsync(_key.Id, held, _lock, cancellationToken).ConfigureAwait(false);
            }

            throw TooLarge();
        }

        if (!_stored)
        {
            // A new session is stored once it holds something; its client profile alone is not worth a record. Nor is
            // one that could never be sent (the presented key was replaced while the request ran).
            if (!hasValueWrites || _keyReplacedWhileRunning)
            {
                return;
            }

            await CreateAsync(cancellationToken).ConfigureAwait(false);
            if (!_stored)
            {
                return;
            }

            // What OnSessionCreated wrote (its handler runs once the session is stored) is written by this commit too,
            // under the lock if a write there escalated to it (LockOnWrite), which a final commit then releases.
            hasWrites = _values.HasChanges;
            if (!hasWrites && (_lock.Lease is null || !final))
            {
                return;
            }
        }

        var lease = final ? _lock.Forget(keepTurn: true) : _lock.Lease;

        using var activity = AsmSessionMetrics.ActivitySource.StartActivity(AsmSessionMetricNames.CommitActivity);
        try
        {
            var outcome = await CommitStoredAsync(lease, hasWrites, final, cancellationToken).ConfigureAwait(false);
            AsmSessionMetrics.SetOutcome(activity, outcome, error: outcome is "lock_lost" or "not_found");
        }
        catch (Exception ex)
        {
            AsmSessionMetrics.SetError(activity, ex);
            throw;
        }
    }

    /// <summary>Commits a stored session's changes, or releases its lock; returns the outcome for the activity.</summary>
    private async ValueTask<string> CommitStoredAsync(SessionLease? lease, bool hasWrites, bool final, CancellationToken cancellationToken)
    {
        if (!hasWrites)
        {
            // Also reached when loading failed half-way (an event handler threw): the lock must not outlive the request.
            if (lease is not null && final)
            {
                await Storage.ReleaseLockAsync(_key.Id, lease, _lock, cancellationToken).ConfigureAwait(false);
                return "released";
            }

            return "unchanged";
        }

        var request = ChangeSetRequest(_services.Time.GetUtcNow(), lease, releaseLock: lease is not null && final, clear: _values.Cleared);
        SessionCommitStatus status;
        try
        {
            status = await Storage.CommitAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SessionStorageException)
        {
            // Nothing was written (a disk full, a server gone): the changes are dropped, so that a second commit (the
            // middleware's, after the app's own) cannot write them without the lock, and the lock is given back, so
            // that the session is usable again as soon as the storage is, not a whole lease later.
            _values.Drop();
            if (lease is not null)
            {
                // Given back, so an explicit commit's later changes would go without the lock: they are refused instead.
                _lock.Forget(keepTurn: true);
                if (!final)
                {
                    _state = SessionState.LockLost;
                }

                await _lock.AbandonAsync(_key.Id, lease).ConfigureAwait(false);
            }

            throw;
        }

        switch (status)
        {
            case SessionCommitStatus.Committed:
                _values.StartNextDelta();
                break;
            case SessionCommitStatus.LockLost:
                if (!final)
                {
                    _lock.Forget();
                    _state = SessionState.LockLost;
                }

                _telemetry.LockLost(_key.Id);
                await RaiseAsync(static (events, c) => events.LockLost(c), new LockLostContext(_context, Hash, _mode), writable: false).ConfigureAwait(false);
                break;
            case SessionCommitStatus.NotFound:
                _telemetry.CommitRefused(_key.Id);
                if (!final)
                {
                    // Refused, not failed: nothing to write them to. The middleware's final commit does not try them again.
                    _values.Drop();
                }

                break;
        }

        return AsmSessionMetrics.OutcomeOf(status);
    }

    /// <summary>The write of this request's change set (values set and removed, profiles to add), as of <paramref name="now"/>.</summary>
    private SessionCommitRequest ChangeSetRequest(
        DateTimeOffset now, SessionLease? lease = null, bool releaseLock = false, bool clear = false, string? createWithSecret = null, DateTimeOffset? absoluteExpiresAt = null) => new()
    {
        SessionId = _key.Id,
        Now = now,
        IdleTimeout = Options.IdleTimeout,
        CreateWithSecret = createWithSecret,
        AbsoluteExpiresAt = absoluteExpiresAt,
        Lease = lease,
        ReleaseLock = releaseLock,

        // The next request of this process waiting for the lock may load as soon as the release is on its way.
        ReleaseObserver = releaseLock ? _lock : null,
        Clear = clear,
        Changes = _values.Changes,
        AddProfiles = _values.NewProfiles,
        MaxProfiles = Options.MaxProfiles,
    };

    private async Task CreateAsync(CancellationToken cancellationToken)
    {
        using var activity = AsmSessionMetrics.ActivitySource.StartActivity(AsmSessionMetricNames.CommitActivity);
        try
        {
            AsmSessionMetrics.SetOutcome(activity, await CreateStoredAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex)
        {
            AsmSessionMetrics.SetError(activity, ex);
            throw;
        }
    }

    /// <summary>Stores a new session's first values; returns the outcome for the activity.</summary>
    private async ValueTask<string> CreateStoredAsync(CancellationToken cancellationToken)
    {
        var now = _services.Time.GetUtcNow();
        var request = ChangeSetRequest(now, createWithSecret: _key.Secret, absoluteExpiresAt: now + Options.AbsoluteTimeout);
        SessionCommitStatus status;
        try
        {
            status = await Storage.CommitAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SessionStorageException)
        {
            // As for a failed commit: nothing was stored, and a second commit (the middleware's) must not retry. Nor
            // does the response name the session (unless it has started already): its key would be Unknown next time.
            _values.Drop();
            _cookie.CancelKey();
            if (ex.InnerException is StorageFullException)
            {
                _telemetry.CreateRefused(_key.Id);
            }

            throw;
        }

        if (status != SessionCommitStatus.Committed)
        {
            _telemetry.CreateCollision(_key.Id);
            return "collided";
        }

        _stored = true;
        _values.StartNextDelta();
        _telemetry.Created(_key.Id);
        await _lifecycle.TrackCreatedAsync(_key.Id, now).ConfigureAwait(false);
        await RaiseAsync(static (events, c) => events.SessionCreated(c), new SessionCreatedContext(_context, Hash), writable: true).ConfigureAwait(false);
        return "created";
    }

    /// <summary>
    /// Raises an event of a commit. When the middleware's final commit raised it, the request has ended and the
    /// middleware has taken the session off it: it is put back for the handler, so that <c>HttpContext.Session</c>
    /// works there as in every other handler, and with <paramref name="writable"/> the handler may also write it
    /// (what it writes is written by that commit).
    /// </summary>
    private async Task RaiseAsync<TContext>(Func<AsmSessionEvents, TContext, Task> raise, TContext context, bool writable)
    {
        if (_context.Features.Get<ISessionFeature>() is not null)
        {
            await raise(Options.Events, context).ConfigureAwait(false);
            return;
        }

        var state = _state;
        var reopened = writable && state == SessionState.Ended;
        if (reopened)
        {
            // The handler's write may take the lock (LockOnWrite): the hold is open for it, and this commit releases it.
            _state = SessionState.Loaded;
            _lock.Reopen();
        }

        _context.Features.Set<ISessionFeature>(new SessionFeature { Session = this });
        try
        {
            await raise(Options.Events, context).ConfigureAwait(false);
        }
        finally
        {
            _context.Features.Set<ISessionFeature>(null);
            _state = state;
            if (reopened)
            {
                _lock.Close();
            }
        }
    }
}
