using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Import;
using Asm.SessionAdapter.Sessions;
using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>Loading: the presented key adopted or refused, the lock taken or escalated, a stock session imported.</summary>
internal sealed partial class AsmSession
{
    /// <summary>
    /// The synchronous load <see cref="ISession"/> forces on callers that did not call <see cref="LoadAsync"/>:
    /// storage failures make the session unavailable for the request, as with the stock session.
    /// </summary>
    private void Load()
    {
        if (_state is not (SessionState.NotLoaded or SessionState.EndedNotLoaded))
        {
            return;
        }

        try
        {
            LoadAsync().GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is SessionStorageException or OperationCanceledException)
        {
            _telemetry.LoadFailed(_key.Value is null ? null : _key.Id, ex);
            _state = SessionState.Unavailable;
        }
    }

    /// <summary>
    /// Loads the session, once: callers that come while another task of the request loads it wait for that load
    /// (see <see cref="SessionStepGate"/>).
    /// </summary>
    public Task LoadAsync(CancellationToken cancellationToken = default) =>
        IsNotLoaded(this)
            ? _steps.RunAsync(this, IsNotLoaded, static (session, ct) => session.LoadOnceAsync(ct), cancellationToken)
            : Task.CompletedTask;

    private static bool IsNotLoaded(AsmSession session) => session._state is SessionState.NotLoaded or SessionState.EndedNotLoaded;

    private async Task LoadOnceAsync(CancellationToken cancellationToken)
    {
        // As with the stock session, a load asked with a cancelled token fails, also one that needs no storage call.
        cancellationToken.ThrowIfCancellationRequested();
        using var activity = AsmSessionMetrics.ActivitySource.StartActivity(AsmSessionMetricNames.LoadActivity);
        try
        {
            await LoadCoreAsync(activity, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            AsmSessionMetrics.SetError(activity, ex);
            throw;
        }

        MarkLoaded();
    }

    /// <summary>The session is loaded: event handlers may use it from here on, and it must not load (and wait for its own lock) again.</summary>
    private void MarkLoaded()
    {
        if (_state == SessionState.NotLoaded)
        {
            _state = SessionState.Loaded;
        }
    }

    private async Task LoadCoreAsync(System.Diagnostics.Activity? activity, CancellationToken cancellationToken)
    {
        if (_state == SessionState.EndedNotLoaded)
        {
            await LoadAfterRequestAsync(cancellationToken).ConfigureAwait(false);
            _state = SessionState.Ended;
            return;
        }

        _mode = _context.GetEndpoint()?.Metadata.GetMetadata<ISessionLockMetadata>()?.Mode ?? Options.DefaultLockMode;
        if (!Enum.IsDefined(_mode))
        {
            // An ISessionLockMetadata of the app's own: an unknown mode would load and write without the lock.
            throw new InvalidOperationException(
                $"The endpoint '{_context.GetEndpoint()?.DisplayName}' asks for session lock mode {_mode}, which is not a SessionLockMode.");
        }
        if (_presentedKey is null)
        {
            // The middleware found no usable cookie. If there was one, it did not unprotect or was not a key.
            if (_context.Request.Cookies.ContainsKey(_services.Cookie.Name))
            {
                AsmSessionMetrics.SetOutcome(activity, "malformed");
                await RejectPresentedKeyAsync(InvalidSessionReason.Malformed).ConfigureAwait(false);
            }
            else
            {
                StartNewSession();
                AsmSessionMetrics.SetOutcome(activity, "new");
            }
        }
        else if (!SessionKey.TryParse(_presentedKey, out var key))
        {
            AsmSessionMetrics.SetOutcome(activity, "malformed");
            await RejectPresentedKeyAsync(InvalidSessionReason.Malformed).ConfigureAwait(false);
        }
        else
        {
            // With ImportStockSessions(), a stock session's key opens the Asm session it was (or is now) imported into.
            var stockKey = _services.Importer is not null && StockSessionImporter.IsStockKey(_presentedKey) ? _presentedKey : null;
            _key = key = stockKey is null ? key : StockSessionImporter.MapKey(stockKey);
            var result = await LoadStoredAsync(key, cancellationToken).ConfigureAwait(false);
            if (stockKey is not null && result.Status == SessionLoadStatus.Unknown)
            {
                result = await ImportStockSessionAsync(stockKey, key, cancellationToken).ConfigureAwait(false);
            }

            AsmSessionMetrics.SetOutcome(activity, AsmSessionMetrics.OutcomeOf(result.Status), error: result.Status == SessionLoadStatus.Corrupt);
            if (!await AdoptAsync(key, result, cancellationToken).ConfigureAwait(false))
            {
                // The request ended while this load waited (a task the request did not await): what it found is read
                // as after the request, with no check, event or cookie (the request's context is gone).
                AdoptAfterRequest(key, result);
                _state = SessionState.Ended;
                return;
            }

            if (stockKey is not null && result.Status == SessionLoadStatus.Zombie && _stored && result.CurrentSecret is { } current
                && result.ZombieIsLatest && !_context.Response.HasStarted)
            {
                // A stock cookie is the zombie of its imported session: the browser moves to the Asm key, unless the
                // session was regenerated since (a login), whose key no zombie is ever handed.
                _key = SessionKey.Create(key.Id, current);
                _servedByZombie = false;
                _cookie.SendKey();
            }
        }
    }

    public async Task AcquireWriteLockAsync(CancellationToken cancellationToken = default)
    {
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        if (LoadEventFlow.IsInsideFor(this))
        {
            // A handler of the load's own events runs inside the load's step: waiting for that step would wait for itself.
            if (NeedsWriteLock())
            {
                await TakeWriteLockAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        else
        {
            await _steps.RunAsync(
                this, static session => session.NeedsWriteLock(), static (session, ct) => session.TakeWriteLockAsync(ct), cancellationToken).ConfigureAwait(false);
        }

        _mode = SessionLockMode.Exclusive;
    }

    /// <summary>Whether a write must take the lock first; throws when this request may not write at all.</summary>
    private bool NeedsWriteLock()
    {
        EnsureAvailable();
        EnsureWritable();
        return _lock.Lease is null && _stored;
    }

    /// <summary>Takes the lock of the loaded session and reloads its latest values, keeping this request's changes.</summary>
    private async Task TakeWriteLockAsync(CancellationToken cancellationToken)
    {
        var result = await LoadLockedAsync(_key, cancellationToken).ConfigureAwait(false);
        if (!await HoldAsync(_key, result).ConfigureAwait(false))
        {
            // The request ended while this waited (a task it did not await): nothing is adopted or reported through
            // the finished request, whose context may be gone.
            throw RequestEnded();
        }

        if (result.Status is SessionLoadStatus.Found or SessionLoadStatus.Zombie && result.Lease is not null)
        {
            _values.Reload(result.Values);
        }
        else if (_state == SessionState.ReadOnlyAfterLockWait)
        {
            EnsureWritable();
        }
        else
        {
            // The session went away (destroyed, expired, its key replaced) between the read and the write.
            await RejectPresentedKeyAsync(ToReason(result.Status), ReplacedWhileRunning(result)).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Holds the lease a load was granted, if any; <see langword="false"/> when the request has ended meanwhile (a load
    /// from a task the request did not await): a lease granted after the final commit closed the hold has gone back,
    /// and one held before it is that commit's to release.
    /// </summary>
    private async ValueTask<bool> HoldAsync(SessionKey key, SessionLoadResult result)
    {
        if (result.Lease is { } lease && !await _lock.HoldOrGiveBackAsync(key.Id, lease).ConfigureAwait(false))
        {
            return false;
        }

        // The final commit changes the state before it closes the hold: a hold taken just before it closed sees it too.
        return _state is not (SessionState.Ended or SessionState.EndedNotLoaded);
    }

    /// <returns>Whether the session was adopted; <see langword="false"/> when the request ended while it loaded (see <see cref="HoldAsync"/>).</returns>
    private async Task<bool> AdoptAsync(SessionKey key, SessionLoadResult result, CancellationToken cancellationToken)
    {
        if (!await HoldAsync(key, result).ConfigureAwait(false))
        {
            return false;
        }

        if (result.Status is not (SessionLoadStatus.Found or SessionLoadStatus.Zombie))
        {
            await RejectPresentedKeyAsync(ToReason(result.Status), ReplacedWhileRunning(result)).ConfigureAwait(false);
            return true;
        }

        // A zombie request keeps the key it presented: it is never handed the current key.
        _key = key;
        _stored = true;
        _userId = result.UserId;
        _values.Reset(result.Values);

        // From here on event handlers may use the session: it must not load (and wait for its own lock) again.
        MarkLoaded();
        if (result.Status == SessionLoadStatus.Zombie)
        {
            // The window is for the browser that regenerated (its requests in flight), nothing more.
            if (!_profiles.MayUseZombie(result.ZombieProfile))
            {
                await _lock.ReleaseAsync().ConfigureAwait(false);
                await RejectPresentedKeyAsync(InvalidSessionReason.ZombieProfileMismatch).ConfigureAwait(false);
                return true;
            }

            _servedByZombie = true;
            _telemetry.ZombieHit(key.Id);
            var zombie = new ZombieKeyContext(_context, Hash);
            try
            {
                await LoadEventFlow.RaiseAsync(this, Options.Events.ZombieKeyAccessed, zombie).ConfigureAwait(false);
            }
            catch
            {
                await StartAfreshAsync(deleteCookie: false).ConfigureAwait(false);
                throw;
            }

            if (zombie.IsRejected)
            {
                await StartAfreshAsync(deleteCookie: true).ConfigureAwait(false);
                return true;
            }
        }

        SessionProfileCheck.ProfileVerdict verdict;
        try
        {
            verdict = await _profiles.CheckAsync(this, key.Id, result.Profiles).ConfigureAwait(false);
        }
        catch
        {
            await StartAfreshAsync(deleteCookie: false).ConfigureAwait(false);
            throw;
        }

        if (verdict.Rejected)
        {
            await StartAfreshAsync(deleteCookie: true).ConfigureAwait(false);
        }
        else if (verdict.NewProfile is { } profile)
        {
            _values.AddProfile(profile);
        }

        return true;
    }

    /// <summary>
    /// Refuses the session just adopted, by a handler's <c>Reject()</c> or by its throwing (which the app may catch and
    /// go on): the owner's session stays as it is, gets its lock back, and this request goes on in a fresh one.
    /// </summary>
    private async Task StartAfreshAsync(bool deleteCookie)
    {
        await _lock.ReleaseAsync().ConfigureAwait(false);
        StartNewSession();
        if (deleteCookie)
        {
            _cookie.Delete();
        }
    }

    /// <summary>
    /// The first load of a session touched after its request ended (from <c>Response.OnCompleted</c> or a background
    /// task): a plain read that takes no lock, starts no timer, raises no event and writes no cookie.
    /// </summary>
    private async Task LoadAfterRequestAsync(CancellationToken cancellationToken)
    {
        _mode = SessionLockMode.ReadOnly;
        if (SessionKey.TryParse(_presentedKey, out var key))
        {
            AdoptAfterRequest(key, await LoadUnlockedAsync(key, cancellationToken).ConfigureAwait(false));
        }
        else
        {
            AdoptAfterRequest(key, null);
        }
    }

    /// <summary>
    /// Takes what a load found for a request that has ended: the session's values if it was found, else an empty session
    /// that is never stored. Nothing here reads the request, whose context may be gone.
    /// </summary>
    private void AdoptAfterRequest(SessionKey key, SessionLoadResult? result)
    {
        var found = result?.Status == SessionLoadStatus.Found;
        _key = found ? key : SessionKey.New();
        _stored = found;
        _userId = found ? result!.UserId : null;
        _servedByZombie = false;
        _cookie.CancelKey();
        if (found)
        {
            _values.Reset(result!.Values);
        }
        else
        {
            _values.Reset();
        }
    }

    /// <summary>
    /// Whether the presented key was refused as a zombie whose window closed only after this request arrived: the key
    /// was still honoured when the browser sent it (a request in flight across a login), so the browser may hold the
    /// key that replaced it by now.
    /// </summary>
    private bool ReplacedWhileRunning(SessionLoadResult result) =>
        result.Status == SessionLoadStatus.ZombieExpired && result.ZombieExpiredAt is { } closed && _arrivedAt < closed.ToUnixTimeMilliseconds();

    /// <param name="reason">Why the key is refused.</param>
    /// <param name="replacedWhileRunning">
    /// Whether the key was replaced while this request ran (see <see cref="ReplacedWhileRunning"/>): the response then
    /// leaves the browser's cookie alone, neither deleting it nor setting a fresh session's key, since that cookie may
    /// be the one that replaced it (the browser logged in meanwhile). The request goes on in a fresh session that is
    /// never stored (see <see cref="_keyReplacedWhileRunning"/>).
    /// </param>
    private async Task RejectPresentedKeyAsync(InvalidSessionReason reason, bool replacedWhileRunning = false)
    {
        StartNewSession();
        MarkLoaded();
        _keyReplacedWhileRunning = replacedWhileRunning;

        // The cookie is deleted whatever the handler does (a refusal by throwing too), so it is reported once.
        if (!replacedWhileRunning)
        {
            _cookie.Delete();
        }

        _telemetry.Invalid(reason);
        await Options.Events.InvalidSessionAccessed(new InvalidSessionContext(_context, Hash, reason)).ConfigureAwait(false);
    }

    private void StartNewSession()
    {
        _key = SessionKey.New();
        _stored = false;
        _userId = null;
        _values.Reset();
        _cookie.CancelKey();
        _servedByZombie = false;
        if (_profiles.Current is { } profile)
        {
            _values.AddProfile(profile);
        }
    }

    private ValueTask<SessionLoadResult> LoadStoredAsync(SessionKey key, CancellationToken cancellationToken) =>
        _mode == SessionLockMode.Exclusive ? LoadLockedAsync(key, cancellationToken) : LoadUnlockedAsync(key, cancellationToken);

    /// <summary>
    /// Loads with a lease (see <see cref="SessionLockHolder.LoadLockedAsync"/>); when the wait times out and
    /// <see cref="LockWaitFailure.ContinueReadOnly"/> goes on without the lock, reads without it, read-only.
    /// </summary>
    private async ValueTask<SessionLoadResult> LoadLockedAsync(SessionKey key, CancellationToken cancellationToken)
    {
        if (await _lock.LoadLockedAsync(key, _mode, cancellationToken).ConfigureAwait(false) is { } result)
        {
            return result;
        }

        _mode = SessionLockMode.ReadOnly;
        var unlocked = await LoadUnlockedAsync(key, cancellationToken).ConfigureAwait(false);
        if (_state is SessionState.NotLoaded or SessionState.Loaded)
        {
            // Not once the request has ended (while this waited): the load then reads what it found as after the request.
            _state = SessionState.ReadOnlyAfterLockWait;
        }

        return unlocked;
    }

    /// <summary>Imports the stock session, then loads what it became (see <see cref="StockSessionImporter"/>).</summary>
    private async ValueTask<SessionLoadResult> ImportStockSessionAsync(string stockKey, SessionKey key, CancellationToken cancellationToken)
    {
        var profile = _profiles.Current;
        var reason = await Storage.RunAsync(
            "importing", key.Id, ct => _services.Importer!.ImportAsync(_services.Driver, Options, stockKey, key, profile, ct), cancellationToken).ConfigureAwait(false);

        // No payload may mean that a parallel request imported it a moment ago: look once more.
        return reason == InvalidSessionReason.Corrupt
            ? SessionLoadResult.Of(SessionLoadStatus.Corrupt)
            : await LoadStoredAsync(key, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask<SessionLoadResult> LoadUnlockedAsync(SessionKey key, CancellationToken cancellationToken) =>
        Storage.LoadAsync(new SessionLoadRequest { Key = key, Now = _services.Time.GetUtcNow(), IdleTimeout = Options.IdleTimeout }, cancellationToken);

    private static InvalidSessionReason ToReason(SessionLoadStatus status) => status switch
    {
        SessionLoadStatus.Expired => InvalidSessionReason.Expired,
        SessionLoadStatus.Destroyed => InvalidSessionReason.Destroyed,
        SessionLoadStatus.ZombieExpired => InvalidSessionReason.ZombieExpired,
        SessionLoadStatus.Corrupt => InvalidSessionReason.Corrupt,
        _ => InvalidSessionReason.Unknown,
    };
}
