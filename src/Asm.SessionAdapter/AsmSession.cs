using System.Diagnostics.CodeAnalysis;
using Asm.Caching;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Import;
using Asm.SessionAdapter.Sessions;
using Asm.SessionAdapter.Storage;
using Asm.SessionAdapter.Users;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Asm.SessionAdapter;

/// <summary>
/// One request's view of its session: loaded lazily on first use, locked according to the endpoint's
/// <see cref="SessionLockMode"/>, and committed by the session middleware as a delta of what the request changed.
/// </summary>
/// <remarks>
/// A request that never touches its session makes no storage call. A request that only reads makes one (load, which
/// also slides the idle expiry and, in <see cref="SessionLockMode.Exclusive"/> mode, takes the lock); a request that
/// writes makes two (load, then commit with unlock).
/// <para>
/// This class holds the lifecycle (<see cref="SessionState"/>) and the session's identity (key, stored, user); the
/// rest is its parts': the values and change set (<see cref="SessionChangeSet"/>), the lock
/// (<see cref="SessionLockHolder"/>), the cookie (<see cref="SessionCookieWriter"/>), the client-profile checks
/// (<see cref="SessionProfileCheck"/>), logs and metrics (<see cref="SessionTelemetry"/>), and storage calls under
/// the I/O timeout (<see cref="GuardedSessionDriver"/>).
/// </para>
/// </remarks>
internal sealed class AsmSession : IAsmSession
{
    private readonly AsmSessionServices _services;
    private readonly AsmSessionOptions _options;
    private readonly HttpContext _context;
    private readonly string? _presentedKey;
    private readonly SessionLifecycle _lifecycle;
    private readonly GuardedSessionDriver _storage;
    private readonly SessionTelemetry _telemetry;
    private readonly SessionChangeSet _values = new();
    private readonly SessionLockHolder _lock;
    private readonly SessionCookieWriter _cookie;
    private readonly SessionProfileCheck _profiles;

    private SessionState _state;
    private SessionKey _key;
    private bool _stored;
    private SessionLockMode _mode;
    private string? _userId;
    private bool _servedByZombie;

    public AsmSession(AsmSessionServices services, HttpContext context, string? presentedKey, SessionLifecycle lifecycle)
    {
        _lifecycle = lifecycle;
        _services = services;
        _options = services.Options;
        _context = context;
        _presentedKey = presentedKey;
        _storage = services.Storage;
        _telemetry = new SessionTelemetry(services.Metrics, services.Logger);
        _lock = new SessionLockHolder(_storage, _options, services.Time, _telemetry, services.LockQueue);
        _cookie = new SessionCookieWriter(context, services.Cookie, () => _key.Value);
        _profiles = new SessionProfileCheck(_options, context, _telemetry);
    }

    public bool IsAvailable
    {
        get
        {
            Load();
            return _state != SessionState.Unavailable;
        }
    }

    /// <summary>The stable session id: it stays the same when the key is regenerated.</summary>
    public string Id
    {
        get
        {
            Load();
            return _state != SessionState.Unavailable ? _key.Id : string.Empty;
        }
    }

    public string? UserId
    {
        get
        {
            Load();
            return _state != SessionState.Unavailable ? _userId : null;
        }
    }

    public IEnumerable<string> Keys
    {
        get
        {
            Load();
            return _values.Keys;
        }
    }

    public SessionLockMode LockMode
    {
        get
        {
            Load();
            return _mode;
        }
    }

    /// <summary>The short hash that names the session in logs, events and messages ("-" before it has a key).</summary>
    private string Hash => _telemetry.Hash(_key.Value is null ? null : _key.Id);

    public bool TryGetValue(string key, [NotNullWhen(true)] out byte[]? value)
    {
        ArgumentNullException.ThrowIfNull(key);
        Load();
        return _values.TryGetValue(key, out value);
    }

    public void Set(string key, byte[] value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        SessionValueName.Validate(key, nameof(key));

        if (PrepareWrite() && !_values.TrySet(key, value, _options.MaxSessionSize))
        {
            throw TooLarge();
        }
    }

    public void Remove(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (PrepareWrite())
        {
            _values.Remove(key);
        }
    }

    public void Clear()
    {
        if (PrepareWrite())
        {
            _values.Clear();
        }
    }

    public void DiscardChanges()
    {
        _values.DiscardValueChanges();
        if (!_stored)
        {
            // A new session with nothing to store is never established: no cookie for it.
            _cookie.CancelKey();
        }
    }

    private InvalidOperationException TooLarge() => new(
        $"Session {Hash} would hold more than AsmSessionOptions.MaxSessionSize ({_options.MaxSessionSize} bytes of values); " +
        "nothing was written. Store less in the session, or raise MaxSessionSize.");

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

    public async Task LoadAsync(CancellationToken cancellationToken = default)
    {
        if (_state is not (SessionState.NotLoaded or SessionState.EndedNotLoaded))
        {
            return;
        }

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

        _mode = _context.GetEndpoint()?.Metadata.GetMetadata<ISessionLockMetadata>()?.Mode ?? _options.DefaultLockMode;
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
            await AdoptAsync(key, result, cancellationToken).ConfigureAwait(false);
            if (stockKey is not null && result.Status == SessionLoadStatus.Zombie && _stored && result.CurrentSecret is { } current
                && !_context.Response.HasStarted)
            {
                // A stock cookie is the zombie of its imported session: the browser moves to the Asm key.
                _key = SessionKey.Create(key.Id, current);
                _servedByZombie = false;
                _cookie.SendKey();
            }
        }
    }

    public async Task AcquireWriteLockAsync(CancellationToken cancellationToken = default)
    {
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        EnsureAvailable();
        EnsureWritable();
        if (_lock.Lease is null && _stored)
        {
            var result = await LoadLockedAsync(_key, cancellationToken).ConfigureAwait(false);
            if (result.Status is SessionLoadStatus.Found or SessionLoadStatus.Zombie && result.Lease is { } lease)
            {
                _values.Reload(result.Values);
                _lock.Hold(_key.Id, lease);
            }
            else if (_state == SessionState.ReadOnlyAfterLockWait)
            {
                EnsureWritable();
            }
            else
            {
                // The session went away (destroyed, expired) between the read and the write.
                await RejectPresentedKeyAsync(ToReason(result.Status)).ConfigureAwait(false);
            }
        }

        _mode = SessionLockMode.Exclusive;
    }

    /// <summary>
    /// Writes what this request changed since its last commit. An explicit call (the app's) keeps the lease, so that
    /// later changes are written under it; the middleware's final call (it removes the session feature first) also
    /// releases the lease and ends the request's session: from then on it never locks, and writes throw.
    /// </summary>
    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await CommitOnceAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (_context.Features.Get<ISessionFeature>() is null)
            {
                // The request is over and its lease given back: the next request of this process may have the lock.
                _lock.EndTurn();
            }
        }
    }

    private async Task CommitOnceAsync(CancellationToken cancellationToken)
    {
        if (_state is SessionState.Ended or SessionState.EndedNotLoaded)
        {
            return;
        }

        var final = _context.Features.Get<ISessionFeature>() is null;
        var writable = _state == SessionState.Loaded;
        var lease = final ? _lock.Forget(keepTurn: true) : _lock.Lease;
        if (final)
        {
            _state = _state switch
            {
                SessionState.NotLoaded => SessionState.EndedNotLoaded,
                SessionState.Unavailable => SessionState.Unavailable,
                _ => SessionState.Ended,
            };
        }

        var hasValueWrites = writable && _values.HasValueChanges;
        var hasWrites = writable && _values.HasChanges;
        if (hasValueWrites && _values.ValueBytes() > _options.MaxSessionSize)
        {
            if (final && lease is not null)
            {
                await _storage.ReleaseLockAsync(_key.Id, lease, cancellationToken).ConfigureAwait(false);
            }

            throw TooLarge();
        }

        if (!_stored)
        {
            // A new session is stored once it holds something; its client profile alone is not worth a record.
            if (hasValueWrites)
            {
                await CreateAsync(cancellationToken).ConfigureAwait(false);
                if (_stored)
                {
                    _values.StartNextDelta();
                }
            }

            return;
        }

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
    private async Task<string> CommitStoredAsync(SessionLease? lease, bool hasWrites, bool final, CancellationToken cancellationToken)
    {
        if (!hasWrites)
        {
            // Also reached when loading failed half-way (an event handler threw): the lock must not outlive the request.
            if (lease is not null && final)
            {
                await _storage.ReleaseLockAsync(_key.Id, lease, cancellationToken).ConfigureAwait(false);
                return "released";
            }

            return "unchanged";
        }

        var request = new SessionCommitRequest
        {
            SessionId = _key.Id,
            Now = _services.Time.GetUtcNow(),
            IdleTimeout = _options.IdleTimeout,
            Lease = lease,
            ReleaseLock = lease is not null && final,
            Clear = _values.Cleared,
            Changes = _values.CopyChanges(),
            AddProfiles = _values.CopyNewProfiles(),
            MaxProfiles = _options.MaxProfiles,
        };
        SessionCommitStatus status;
        try
        {
            status = await _storage.CommitAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SessionStorageException)
        {
            // Nothing was written (a disk full, a server gone): the changes are dropped, so that a second commit (the
            // middleware's, after the app's own) cannot write them without the lock, and the lock is given back, so
            // that the session is usable again as soon as the storage is, not a whole lease later.
            _values.Drop();
            if (lease is not null)
            {
                _lock.Forget();
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
                await _options.Events.LockLost(new LockLostContext(_context, Hash, _mode)).ConfigureAwait(false);
                break;
            case SessionCommitStatus.NotFound:
                _telemetry.CommitRefused(_key.Id);
                break;
        }

        return AsmSessionMetrics.OutcomeOf(status);
    }

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
            var status = await _storage.RegenerateAsync(RegenerateRequest(newKey), cancellationToken).ConfigureAwait(false);
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
            await CreateAsync(cancellationToken).ConfigureAwait(false);
            if (!_stored)
            {
                throw new InvalidOperationException($"Session {Hash} could not be stored, so it cannot be bound to a user.");
            }

            // What was written is stored now: the commit at the end of the request has nothing left to write again.
            _values.StartNextDelta();
            _cookie.SendKey();
        }

        var newKey = _key.WithNewSecret();
        var request = RegenerateRequest(newKey);
        var status = await _storage.RunAsync(
            "binding", _key.Id, async ct => await _lifecycle.BindAsync(request, userId, ct).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        if (status != SessionCommitStatus.Committed)
        {
            throw new InvalidOperationException(
                $"Session {Hash} was destroyed or expired while this request ran, so it cannot be bound to a user.");
        }

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
            ZombieExpiresAt = now + _options.ZombieLifetime,
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

        _lock.StopRenewal();
        if (_stored)
        {
            var id = _key.Id;
            var userId = _userId;
            await _storage.RunAsync(
                "destroying", id, ct => new ValueTask(_lifecycle.EndAsync(id, userId, SessionEndReason.Destroyed, ct)), cancellationToken).ConfigureAwait(false);
        }

        _lock.Forget();
        StartNewSession();
        _cookie.Delete();
    }

    private async Task AdoptAsync(SessionKey key, SessionLoadResult result, CancellationToken cancellationToken)
    {
        if (result.Status is not (SessionLoadStatus.Found or SessionLoadStatus.Zombie))
        {
            await RejectPresentedKeyAsync(ToReason(result.Status)).ConfigureAwait(false);
            return;
        }

        // A zombie request keeps the key it presented: it is never handed the current key.
        _key = key;
        _stored = true;
        _userId = result.UserId;
        _values.Reset(result.Values);
        if (result.Lease is { } lease)
        {
            _lock.Hold(key.Id, lease);
        }

        // From here on event handlers may use the session: it must not load (and wait for its own lock) again.
        MarkLoaded();
        if (result.Status == SessionLoadStatus.Zombie)
        {
            // The window is for the browser that regenerated (its requests in flight), nothing more.
            if (!_profiles.MayUseZombie(result.ZombieProfile))
            {
                await _lock.ReleaseAsync(cancellationToken).ConfigureAwait(false);
                await RejectPresentedKeyAsync(InvalidSessionReason.ZombieProfileMismatch).ConfigureAwait(false);
                return;
            }

            _servedByZombie = true;
            _telemetry.ZombieHit(key.Id);
            var zombie = new ZombieKeyContext(_context, Hash);
            await _options.Events.ZombieKeyAccessed(zombie).ConfigureAwait(false);
            if (zombie.IsRejected)
            {
                await _lock.ReleaseAsync(cancellationToken).ConfigureAwait(false);
                StartNewSession();
                _cookie.Delete();
                return;
            }
        }

        var verdict = await _profiles.CheckAsync(key.Id, result.Profiles).ConfigureAwait(false);
        if (verdict.Rejected)
        {
            // The owner's session stays as it is: give it back its lock and start this request afresh.
            await _lock.ReleaseAsync(cancellationToken).ConfigureAwait(false);
            StartNewSession();
            _cookie.Delete();
        }
        else if (verdict.NewProfile is { } profile)
        {
            _values.AddProfile(profile);
        }
    }

    /// <summary>
    /// The first load of a session touched after its request ended (from <c>Response.OnCompleted</c> or a background
    /// task): a plain read that takes no lock, starts no timer, raises no event and writes no cookie.
    /// </summary>
    private async Task LoadAfterRequestAsync(CancellationToken cancellationToken)
    {
        _mode = SessionLockMode.ReadOnly;
        StartNewSession();
        if (SessionKey.TryParse(_presentedKey, out var key))
        {
            var result = await LoadUnlockedAsync(key, cancellationToken).ConfigureAwait(false);
            if (result.Status == SessionLoadStatus.Found)
            {
                _key = key;
                _stored = true;
                _userId = result.UserId;
                _values.Reset(result.Values);
            }
        }
    }

    private async Task RejectPresentedKeyAsync(InvalidSessionReason reason)
    {
        StartNewSession();
        MarkLoaded();

        // The cookie is deleted whatever the handler does (a refusal by throwing too), so it is reported once.
        _cookie.Delete();
        _telemetry.Invalid(reason);
        await _options.Events.InvalidSessionAccessed(new InvalidSessionContext(_context, Hash, reason)).ConfigureAwait(false);
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

    private async Task<SessionLoadResult> LoadStoredAsync(SessionKey key, CancellationToken cancellationToken) =>
        _mode == SessionLockMode.Exclusive
            ? await LoadLockedAsync(key, cancellationToken).ConfigureAwait(false)
            : await LoadUnlockedAsync(key, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Loads with a lease (see <see cref="SessionLockHolder.LoadLockedAsync"/>); when the wait times out and
    /// <see cref="LockWaitFailure.ContinueReadOnly"/> goes on without the lock, reads without it, read-only.
    /// </summary>
    private async Task<SessionLoadResult> LoadLockedAsync(SessionKey key, CancellationToken cancellationToken)
    {
        if (await _lock.LoadLockedAsync(key, _mode, cancellationToken).ConfigureAwait(false) is { } result)
        {
            return result;
        }

        _mode = SessionLockMode.ReadOnly;
        var unlocked = await LoadUnlockedAsync(key, cancellationToken).ConfigureAwait(false);
        _state = SessionState.ReadOnlyAfterLockWait;
        return unlocked;
    }

    /// <summary>Imports the stock session, then loads what it became (see <see cref="StockSessionImporter"/>).</summary>
    private async Task<SessionLoadResult> ImportStockSessionAsync(string stockKey, SessionKey key, CancellationToken cancellationToken)
    {
        var profile = _profiles.Current;
        var reason = await _storage.RunAsync(
            "importing", key.Id, ct => _services.Importer!.ImportAsync(_services.Driver, _options, stockKey, key, profile, ct), cancellationToken).ConfigureAwait(false);

        // No payload may mean that a parallel request imported it a moment ago: look once more.
        return reason == InvalidSessionReason.Corrupt
            ? SessionLoadResult.Of(SessionLoadStatus.Corrupt)
            : await LoadStoredAsync(key, cancellationToken).ConfigureAwait(false);
    }

    private async Task<SessionLoadResult> LoadUnlockedAsync(SessionKey key, CancellationToken cancellationToken)
    {
        var request = new SessionLoadRequest { Key = key, Now = _services.Time.GetUtcNow(), IdleTimeout = _options.IdleTimeout };
        return await _storage.LoadAsync(request, cancellationToken).ConfigureAwait(false);
    }

    private async Task CreateAsync(CancellationToken cancellationToken)
    {
        var now = _services.Time.GetUtcNow();
        var request = new SessionCommitRequest
        {
            SessionId = _key.Id,
            Now = now,
            IdleTimeout = _options.IdleTimeout,
            CreateWithSecret = _key.Secret,
            AbsoluteExpiresAt = now + _options.AbsoluteTimeout,
            Changes = _values.CopyChanges(),
            AddProfiles = _values.CopyNewProfiles(),
            MaxProfiles = _options.MaxProfiles,
        };
        SessionCommitStatus status;
        try
        {
            status = await _storage.CommitAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SessionStorageException)
        {
            // As for a failed commit: nothing was stored, and a second commit (the middleware's) must not retry.
            _values.Drop();
            if (ex.InnerException is StorageFullException)
            {
                _telemetry.CreateRefused(_key.Id);
            }

            throw;
        }

        if (status == SessionCommitStatus.Committed)
        {
            _stored = true;
            _telemetry.Created(_key.Id);
            await _lifecycle.TrackCreatedAsync(_key.Id, now, cancellationToken).ConfigureAwait(false);
            await _options.Events.SessionCreated(new SessionCreatedContext(_context, Hash)).ConfigureAwait(false);
        }
        else
        {
            _telemetry.CreateCollision(_key.Id);
        }
    }

    /// <summary>Checks that this request may write, taking the lock first in <see cref="SessionLockMode.LockOnWrite"/>.</summary>
    private bool PrepareWrite()
    {
        Load();
        if (_state == SessionState.Unavailable)
        {
            return false;
        }

        EnsureWritable();
        switch (_mode)
        {
            case SessionLockMode.ReadOnly:
                throw new InvalidOperationException(
                    $"The session is read-only for this request (SessionLockMode.ReadOnly{(_context.GetEndpoint() is { } e ? $" on '{e.DisplayName}'" : "")}). " +
                    "Call HttpContext.Session.AcquireWriteLockAsync() before writing, or give the endpoint another mode with " +
                    "[SessionLock(SessionLockMode.Exclusive)] or .WithSessionLock(SessionLockMode.Exclusive).");
            case SessionLockMode.LockOnWrite when _lock.Lease is null && _stored:
                // ISession.Set is synchronous: callers that want no blocking call AcquireWriteLockAsync first.
                AcquireWriteLockAsync().GetAwaiter().GetResult();
                _mode = SessionLockMode.LockOnWrite;
                break;
        }

        if (!_stored && !_cookie.SendsKey)
        {
            _cookie.Establish();
        }

        return true;
    }

    private void EnsureWritable()
    {
        switch (_state)
        {
            case SessionState.ReadOnlyAfterLockWait:
                throw new InvalidOperationException(
                    $"The wait for the lock of session {Hash} timed out (AsmSessionOptions.LockWaitTimeout), and " +
                    "LockWaitFailure.ContinueReadOnly went on without it: the session is read-only for this request.");
            case SessionState.LockLost:
                throw new InvalidOperationException(
                    $"The lock lease of session {Hash} was lost (a commit was refused): nothing more can be written in this request.");
            case SessionState.Ended or SessionState.EndedNotLoaded:
                throw new InvalidOperationException(
                    $"The request of session {Hash} has ended (the session middleware made its final commit), so nothing " +
                    "written now would be stored. Write the session while the request runs; reading it is still allowed.");
        }
    }

    private void EnsureNotServedByZombie(string what)
    {
        if (_servedByZombie)
        {
            throw new InvalidOperationException(
                $"Session {Hash} was served to this request through a replaced (zombie) key, so it cannot be {what} here: " +
                "a zombie request is never handed the current key.");
        }
    }

    private void EnsureAvailable()
    {
        if (_state == SessionState.Unavailable)
        {
            throw new InvalidOperationException("The session is unavailable for this request: its storage could not be reached.");
        }
    }

    private static InvalidSessionReason ToReason(SessionLoadStatus status) => status switch
    {
        SessionLoadStatus.Expired => InvalidSessionReason.Expired,
        SessionLoadStatus.Destroyed => InvalidSessionReason.Destroyed,
        SessionLoadStatus.ZombieExpired => InvalidSessionReason.ZombieExpired,
        SessionLoadStatus.Corrupt => InvalidSessionReason.Corrupt,
        _ => InvalidSessionReason.Unknown,
    };
}
