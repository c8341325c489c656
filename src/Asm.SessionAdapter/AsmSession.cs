using System.Diagnostics.CodeAnalysis;
using System.Text;
using Asm.Caching;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Import;
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
/// </remarks>
internal sealed class AsmSession : IAsmSession
{
    private static readonly Dictionary<string, byte[]> NoValues = new(StringComparer.Ordinal);

    private readonly AsmSessionServices _services;
    private readonly AsmSessionOptions _options;
    private readonly HttpContext _context;
    private readonly string? _presentedKey;
    private readonly SessionLifecycle _lifecycle;

    private SessionKey _key;
    private bool _loaded;
    private bool _available = true;
    private bool _stored;
    private SessionLockMode _mode;
    private IReadOnlyDictionary<string, byte[]> _values = NoValues;
    private readonly Dictionary<string, byte[]?> _changes = new(StringComparer.Ordinal);
    private bool _cleared;
    private readonly List<string> _newProfiles = [];
    private SessionLease? _lease;
    private ITimer? _renewal;
    private bool _cookieCallbackRegistered;
    private bool _sendKey;
    private bool _deleteCookie;
    private string? _userId;
    private WriteRefusal _refusal;
    private bool _servedByZombie;

    /// <summary>Why this request may no longer write, once something closed it for writes.</summary>
    private enum WriteRefusal
    {
        /// <summary>Writes are allowed (as far as the lock mode goes).</summary>
        None,

        /// <summary>The lock wait timed out and <see cref="LockWaitFailure.ContinueReadOnly"/> went on without the lock.</summary>
        LockWaitTimedOut,

        /// <summary>An explicit commit found the lease lost: nothing more may be written without it.</summary>
        LockLost,

        /// <summary>The middleware's final commit has run: the request is over.</summary>
        Ended,
    }

    public AsmSession(AsmSessionServices services, HttpContext context, string? presentedKey, SessionLifecycle lifecycle)
    {
        _lifecycle = lifecycle;
        _services = services;
        _options = services.Options;
        _context = context;
        _presentedKey = presentedKey;
    }

    public bool IsAvailable
    {
        get
        {
            Load();
            return _available;
        }
    }

    /// <summary>The stable session id: it stays the same when the key is regenerated.</summary>
    public string Id
    {
        get
        {
            Load();
            return _available ? _key.Id : string.Empty;
        }
    }

    public string? UserId
    {
        get
        {
            Load();
            return _available ? _userId : null;
        }
    }

    public IEnumerable<string> Keys
    {
        get
        {
            Load();
            var keys = _cleared ? [] : _values.Keys.Where(k => !_changes.ContainsKey(k)).ToList();
            keys.AddRange(_changes.Where(c => c.Value is not null).Select(c => c.Key));
            return keys;
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

    private string Hash => _key.Value is null ? "-" : SessionKey.Hash(_key.Id);

    public bool TryGetValue(string key, [NotNullWhen(true)] out byte[]? value)
    {
        ArgumentNullException.ThrowIfNull(key);
        Load();
        if (_changes.TryGetValue(key, out value))
        {
            return value is not null;
        }

        value = null;
        return !_cleared && _values.TryGetValue(key, out value);
    }

    public void Set(string key, byte[] value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        SessionValueName.Validate(key, nameof(key));

        if (PrepareWrite())
        {
            var had = _changes.TryGetValue(key, out var previous);
            _changes[key] = [.. value];
            if (ValueBytes() > _options.MaxSessionSize)
            {
                if (had)
                {
                    _changes[key] = previous;
                }
                else
                {
                    _changes.Remove(key);
                }

                throw TooLarge();
            }
        }
    }

    public void Remove(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (PrepareWrite())
        {
            _changes[key] = null;
        }
    }

    public void Clear()
    {
        if (PrepareWrite())
        {
            _changes.Clear();
            _cleared = true;
        }
    }

    public void DiscardChanges()
    {
        _changes.Clear();
        _cleared = false;
        if (!_stored)
        {
            // A new session with nothing to store is never established: no cookie for it.
            _sendKey = false;
        }
    }

    /// <summary>The bytes of values the session would hold once this request's changes are written.</summary>
    private long ValueBytes()
    {
        long total = 0;
        if (!_cleared)
        {
            foreach (var (name, value) in _values)
            {
                total += _changes.ContainsKey(name) ? 0 : value.Length;
            }
        }

        foreach (var value in _changes.Values)
        {
            total += value?.Length ?? 0;
        }

        return total;
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
        if (_loaded)
        {
            return;
        }

        try
        {
            LoadAsync().GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is SessionStorageException or OperationCanceledException)
        {
            Log.LoadFailed(_services.Logger, Hash, ex);
            _available = false;
            _loaded = true;
        }
    }

    public async Task LoadAsync(CancellationToken cancellationToken = default)
    {
        if (_loaded)
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

        _loaded = true;
    }

    private async Task LoadCoreAsync(System.Diagnostics.Activity? activity, CancellationToken cancellationToken)
    {
        if (_refusal == WriteRefusal.Ended)
        {
            await LoadAfterRequestAsync(cancellationToken).ConfigureAwait(false);
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
                SendKey();
            }
        }
    }

    public async Task AcquireWriteLockAsync(CancellationToken cancellationToken = default)
    {
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        EnsureAvailable();
        EnsureWritable();
        if (_lease is null && _stored)
        {
            var result = await LoadLockedAsync(_key, cancellationToken).ConfigureAwait(false);
            if (result.Status is SessionLoadStatus.Found or SessionLoadStatus.Zombie && result.Lease is { } lease)
            {
                _values = result.Values;
                Hold(lease);
            }
            else if (_refusal == WriteRefusal.LockWaitTimedOut)
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
        if (_refusal == WriteRefusal.Ended)
        {
            return;
        }

        var final = _context.Features.Get<ISessionFeature>() is null;
        var lease = _lease;
        var writable = _loaded && _available && _refusal == WriteRefusal.None;
        if (final)
        {
            _refusal = WriteRefusal.Ended;
            StopRenewal();
            _lease = null;
        }

        var hasValueWrites = writable && (_changes.Count > 0 || _cleared);
        var hasWrites = hasValueWrites || (writable && _newProfiles.Count > 0);
        if (hasValueWrites && ValueBytes() > _options.MaxSessionSize)
        {
            if (final && lease is not null)
            {
                await StorageAsync("releasing the lock of", ct => _services.Driver.ReleaseLockAsync(_key.Id, lease, ct), cancellationToken)
                    .ConfigureAwait(false);
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
                    StartNextDelta();
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
                await StorageAsync(
                    "releasing the lock of", ct => _services.Driver.ReleaseLockAsync(_key.Id, lease, ct), cancellationToken).ConfigureAwait(false);
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
            Clear = _cleared,
            Changes = new Dictionary<string, byte[]?>(_changes, StringComparer.Ordinal),
            AddProfiles = [.. _newProfiles],
            MaxProfiles = _options.MaxProfiles,
        };
        SessionCommitStatus status;
        try
        {
            status = await StorageAsync("committing", ct => _services.Driver.CommitAsync(request, ct), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SessionStorageException)
        {
            // Nothing was written (a disk full, a server gone): the changes are dropped, so that a second commit (the
            // middleware's, after the app's own) cannot write them without the lock, and the lock is given back, so
            // that the session is usable again as soon as the storage is, not a whole lease later.
            DropChanges();
            if (lease is not null)
            {
                StopRenewal();
                _lease = null;
                await AbandonAsync(_key.Id, lease).ConfigureAwait(false);
            }

            throw;
        }

        switch (status)
        {
            case SessionCommitStatus.Committed:
                StartNextDelta();
                break;
            case SessionCommitStatus.LockLost:
                if (!final)
                {
                    StopRenewal();
                    _lease = null;
                    _refusal = WriteRefusal.LockLost;
                }

                Log.LockLost(_services.Logger, Hash);
                _services.Metrics.LockLost();
                await _options.Events.LockLost(new LockLostContext(_context, Hash, _mode)).ConfigureAwait(false);
                break;
            case SessionCommitStatus.NotFound:
                Log.CommitRefused(_services.Logger, Hash);
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
        EnsureResponseNotStarted("regenerated");
        var newKey = _key.WithNewSecret();
        if (_stored)
        {
            var request = RegenerateRequest(newKey);
            var status = await StorageAsync("regenerating", ct => _services.Driver.RegenerateAsync(request, ct), cancellationToken).ConfigureAwait(false);
            if (status != SessionCommitStatus.Committed)
            {
                throw new InvalidOperationException(
                    $"Session {Hash} was destroyed or expired while this request ran, so its key cannot be regenerated.");
            }

            SendKey();
        }
        else if (_sendKey)
        {
            SendKey();
        }

        _key = newKey;
        _services.Metrics.Regenerated();
        Log.Regenerated(_services.Logger, Hash);
    }

    public async Task BindUserAsync(string userId, CancellationToken cancellationToken = default)
    {
        SessionLifecycle.ValidateUserId(userId, nameof(userId));
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        EnsureAvailable();
        EnsureWritable();
        EnsureNotServedByZombie("bound to a user");
        EnsureResponseNotStarted("bound to a user");
        if (!_stored)
        {
            // The user's index lists stored sessions: store this one now, with what the request has written so far.
            await CreateAsync(cancellationToken).ConfigureAwait(false);
            if (!_stored)
            {
                throw new InvalidOperationException($"Session {Hash} could not be stored, so it cannot be bound to a user.");
            }

            // What was written is stored now: the commit at the end of the request has nothing left to write again.
            _values = _changes.Where(c => c.Value is not null).ToDictionary(c => c.Key, c => c.Value!, StringComparer.Ordinal);
            _changes.Clear();
            _cleared = false;
            _newProfiles.Clear();
            SendKey();
        }

        var newKey = _key.WithNewSecret();
        var request = RegenerateRequest(newKey);
        var status = await StorageAsync(
            "binding", async ct => await _lifecycle.BindAsync(request, userId, ct).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        if (status != SessionCommitStatus.Committed)
        {
            throw new InvalidOperationException(
                $"Session {Hash} was destroyed or expired while this request ran, so it cannot be bound to a user.");
        }

        _key = newKey;
        _userId = userId;
        SendKey();
        _services.Metrics.Regenerated();
        _services.Metrics.UserBound();
        Log.UserBound(_services.Logger, Hash);
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
            Profile = _options.ProfileProvider?.Invoke(_context),
        };
    }

    public async Task DestroyAsync(CancellationToken cancellationToken = default)
    {
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        EnsureAvailable();
        if (_refusal == WriteRefusal.Ended)
        {
            EnsureWritable();
        }

        StopRenewal();
        if (_stored)
        {
            var id = _key.Id;
            var userId = _userId;
            await StorageAsync(
                "destroying", ct => new ValueTask(_lifecycle.EndAsync(id, userId, SessionEndReason.Destroyed, ct)), cancellationToken).ConfigureAwait(false);
        }

        _lease = null;
        StartNewSession();
        if (!_context.Response.HasStarted)
        {
            DeleteCookie();
        }
    }

    private async Task AdoptAsync(SessionKey key, SessionLoadResult result, CancellationToken cancellationToken)
    {
        if (result.Status is not (SessionLoadStatus.Found or SessionLoadStatus.Zombie))
        {
            await RejectPresentedKeyAsync(ToReason(result.Status)).ConfigureAwait(false);
            return;
        }

        // A zombie request keeps the key it presented: it is never handed the current one.
        _key = key;
        _stored = true;
        _userId = result.UserId;
        _values = result.Values;
        if (result.Lease is { } lease)
        {
            Hold(lease);
        }

        // From here on event handlers may use the session: it must not load (and wait for its own lock) again.
        _loaded = true;
        if (result.Status == SessionLoadStatus.Zombie)
        {
            // The window is for the browser that regenerated (its requests in flight), nothing more.
            if (_options.ProfileProvider?.Invoke(_context) is { } profile && result.ZombieProfile is { } regenerating
                && !string.Equals(profile, regenerating, StringComparison.Ordinal))
            {
                await GiveBackLockAsync(cancellationToken).ConfigureAwait(false);
                await RejectPresentedKeyAsync(InvalidSessionReason.ZombieProfileMismatch).ConfigureAwait(false);
                return;
            }

            _servedByZombie = true;
            _services.Metrics.ZombieHit();
            Log.ZombieHit(_services.Logger, Hash);
            var zombie = new ZombieKeyContext(_context, Hash);
            await _options.Events.ZombieKeyAccessed(zombie).ConfigureAwait(false);
            if (zombie.IsRejected)
            {
                await GiveBackLockAsync(cancellationToken).ConfigureAwait(false);
                StartNewSession();
                DeleteCookie();
                return;
            }
        }

        await CheckProfileAsync(result.Profiles, cancellationToken).ConfigureAwait(false);
    }

    private async Task CheckProfileAsync(IReadOnlyList<string> previous, CancellationToken cancellationToken)
    {
        if (_options.ProfileProvider?.Invoke(_context) is not { } profile || previous.Contains(profile, StringComparer.Ordinal))
        {
            return;
        }

        if (previous.Count > 0)
        {
            var changed = new ProfileChangedContext(_context, Hash, profile, previous);
            await _options.Events.ProfileChanged(changed).ConfigureAwait(false);
            _services.Metrics.ProfileChanged(changed.IsRejected);
            Log.ProfileChanged(_services.Logger, Hash, changed.IsRejected ? "rejected" : "accepted");
            if (changed.IsRejected)
            {
                // The owner's session stays as it is: give it back its lock and start this request afresh.
                await GiveBackLockAsync(cancellationToken).ConfigureAwait(false);
                StartNewSession();
                DeleteCookie();
                return;
            }
        }

        _newProfiles.Add(profile);
    }

    /// <summary>Releases the lease this request took with a session it does not adopt after all.</summary>
    private async Task GiveBackLockAsync(CancellationToken cancellationToken)
    {
        StopRenewal();
        if (_lease is { } lease)
        {
            _lease = null;
            var id = _key.Id;
            await StorageAsync("releasing the lock of", ct => _services.Driver.ReleaseLockAsync(id, lease, ct), cancellationToken)
                .ConfigureAwait(false);
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
                _values = result.Values;
            }
        }
    }

    private async Task RejectPresentedKeyAsync(InvalidSessionReason reason)
    {
        StartNewSession();
        _loaded = true;

        // The cookie is deleted whatever the handler does (a refusal by throwing too), so it is reported once.
        DeleteCookie();
        _services.Metrics.Invalid(reason);
        Log.InvalidSession(_services.Logger, reason);
        await _options.Events.InvalidSessionAccessed(new InvalidSessionContext(_context, Hash, reason)).ConfigureAwait(false);
    }

    private void StartNewSession()
    {
        _key = SessionKey.New();
        _stored = false;
        _userId = null;
        _values = NoValues;
        _changes.Clear();
        _cleared = false;
        _newProfiles.Clear();
        _sendKey = false;
        _servedByZombie = false;
        if (_options.ProfileProvider?.Invoke(_context) is { } profile)
        {
            _newProfiles.Add(profile);
        }
    }

    private Task<SessionLoadResult> LoadStoredAsync(SessionKey key, CancellationToken cancellationToken) =>
        _mode == SessionLockMode.Exclusive ? LoadLockedAsync(key, cancellationToken) : LoadUnlockedAsync(key, cancellationToken);

    /// <summary>Imports the stock session, then loads what it became (see <see cref="StockSessionImporter"/>).</summary>
    private async Task<SessionLoadResult> ImportStockSessionAsync(string stockKey, SessionKey key, CancellationToken cancellationToken)
    {
        var profile = _options.ProfileProvider?.Invoke(_context);
        var reason = await StorageAsync(
            "importing", ct => _services.Importer!.ImportAsync(_services.Driver, _options, stockKey, key, profile, ct), cancellationToken).ConfigureAwait(false);

        // No payload may mean that a parallel request imported it a moment ago: look once more.
        return reason == InvalidSessionReason.Corrupt
            ? SessionLoadResult.Of(SessionLoadStatus.Corrupt)
            : await LoadStoredAsync(key, cancellationToken).ConfigureAwait(false);
    }

    private Task<SessionLoadResult> LoadUnlockedAsync(SessionKey key, CancellationToken cancellationToken)
    {
        var request = new SessionLoadRequest { Key = key, Now = _services.Time.GetUtcNow(), IdleTimeout = _options.IdleTimeout };
        return StorageAsync("loading", ct => _services.Driver.LoadAsync(request, ct), cancellationToken);
    }

    /// <summary>
    /// Loads with a lease, waiting (without spinning) for the current holder to release it, up to
    /// <see cref="AsmSessionOptions.LockWaitTimeout"/>.
    /// </summary>
    private async Task<SessionLoadResult> LoadLockedAsync(SessionKey key, CancellationToken cancellationToken)
    {
        var time = _services.Time;
        var started = time.GetTimestamp();
        var lease = SessionLease.Create(_options.LockLease);
        for (var attempt = 0; ; attempt++)
        {
            var request = new SessionLoadRequest { Key = key, Now = time.GetUtcNow(), IdleTimeout = _options.IdleTimeout, Lease = lease };
            SessionLoadResult result;
            try
            {
                result = await StorageAsync("loading", ct => _services.Driver.LoadAsync(request, ct), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SessionStorageException)
            {
                // The storage may have granted the lease before the answer was lost: give it back by its token, so
                // that the session is not blocked for a whole lease by a request that is gone.
                await AbandonAsync(key.Id, lease).ConfigureAwait(false);
                throw;
            }

            var waited = time.GetElapsedTime(started);
            if (result.Status != SessionLoadStatus.LockBusy)
            {
                if (attempt > 0)
                {
                    _services.Metrics.LockWaited(waited, acquired: true);
                }

                return result;
            }

            var remaining = _options.LockWaitTimeout - waited;
            if (remaining <= TimeSpan.Zero)
            {
                _services.Metrics.LockWaited(waited, acquired: false);
                Log.LockTimeout(_services.Logger, waited, _mode, SessionKey.Hash(key.Id));
                if (_options.LockWaitFailure == LockWaitFailure.ContinueReadOnly)
                {
                    _refusal = WriteRefusal.LockWaitTimedOut;
                    _mode = SessionLockMode.ReadOnly;
                    return await LoadUnlockedAsync(key, cancellationToken).ConfigureAwait(false);
                }

                throw new SessionLockTimeoutException(
                    $"Waited {waited.TotalMilliseconds:0} ms (AsmSessionOptions.LockWaitTimeout) for the {_mode} lock of session " +
                    $"{SessionKey.Hash(key.Id)}, which another request holds. Mark endpoints that only read the session with " +
                    "[SessionLock(SessionLockMode.ReadOnly)] so they do not wait, or set LockWaitFailure to ContinueReadOnly.");
            }

            // Releases wake a waiter at once; the growing bound covers holders in other processes that cannot signal.
            var bound = TimeSpan.FromMilliseconds(Math.Min(100, 2 << Math.Min(attempt, 6)));
            await _services.Driver.WaitForReleaseAsync(key.Id, remaining < bound ? remaining : bound, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task AbandonAsync(string id, SessionLease lease)
    {
        try
        {
            using var timeout = new CancellationTokenSource(_options.IOTimeout);
            await _services.Driver.ReleaseLockAsync(id, lease, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.AbandonFailed(_services.Logger, SessionKey.Hash(id), ex);
        }
    }

    private void Hold(SessionLease lease)
    {
        _lease = lease;
        var period = lease.Duration / 3;
        _renewal = _services.Time.CreateTimer(static state => _ = ((AsmSession)state!).RenewAsync(), this, period, period);
    }

    private async Task RenewAsync()
    {
        if (_lease is not { } lease)
        {
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(Min(_options.IOTimeout, lease.Duration / 3), _services.Time);
            if (!await _services.Driver.RenewLockAsync(_key.Id, lease, _services.Time.GetUtcNow(), timeout.Token).ConfigureAwait(false))
            {
                // Lost: the commit's fence check refuses the write and raises OnLockLost.
                StopRenewal();
            }
        }
        catch (Exception ex)
        {
            Log.RenewFailed(_services.Logger, Hash, ex);
        }
    }

    private void StopRenewal()
    {
        _renewal?.Dispose();
        _renewal = null;
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
            Changes = _changes,
            AddProfiles = _newProfiles,
            MaxProfiles = _options.MaxProfiles,
        };
        SessionCommitStatus status;
        try
        {
            status = await StorageAsync("creating", ct => _services.Driver.CommitAsync(request, ct), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SessionStorageException)
        {
            // As for a failed commit: nothing was stored, and a second commit (the middleware's) must not retry.
            DropChanges();
            if (ex.InnerException is StorageFullException)
            {
                _services.Metrics.Refused();
                Log.CreateRefused(_services.Logger, Hash);
            }

            throw;
        }

        if (status == SessionCommitStatus.Committed)
        {
            _stored = true;
            _services.Metrics.Created();
            Log.SessionCreated(_services.Logger, Hash);
            await _lifecycle.TrackCreatedAsync(_key.Id, now, cancellationToken).ConfigureAwait(false);
            await _options.Events.SessionCreated(new SessionCreatedContext(_context, Hash)).ConfigureAwait(false);
        }
        else
        {
            Log.CreateCollision(_services.Logger, Hash);
        }
    }

    /// <summary>Forgets this request's writes after a commit that failed, so that nothing retries them.</summary>
    private void DropChanges()
    {
        _changes.Clear();
        _cleared = false;
        _newProfiles.Clear();
    }

    /// <summary>Checks that this request may write, taking the lock first in <see cref="SessionLockMode.LockOnWrite"/>.</summary>
    private bool PrepareWrite()
    {
        Load();
        if (!_available)
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
            case SessionLockMode.LockOnWrite when _lease is null && _stored:
                // ISession.Set is synchronous: callers that want no blocking call AcquireWriteLockAsync first.
                AcquireWriteLockAsync().GetAwaiter().GetResult();
                _mode = SessionLockMode.LockOnWrite;
                break;
        }

        if (!_stored && !_sendKey)
        {
            if (_context.Response.HasStarted)
            {
                throw new InvalidOperationException("The session cannot be established after the response has started.");
            }

            SendKey();
        }

        return true;
    }

    /// <summary>Sends the session's key in the response (this wins over a delete).</summary>
    private void SendKey()
    {
        _sendKey = true;
        RegisterCookieCallback();
    }

    /// <summary>Deletes the presented cookie in the response, unless a key is sent after all.</summary>
    private void DeleteCookie()
    {
        if (!_context.Response.HasStarted)
        {
            _deleteCookie = true;
            RegisterCookieCallback();
        }
    }

    private void RegisterCookieCallback()
    {
        if (_cookieCallbackRegistered)
        {
            return;
        }

        _cookieCallbackRegistered = true;
        _context.Response.OnStarting(static state =>
        {
            var session = (AsmSession)state;
            if (session._sendKey)
            {
                session._services.Cookie.Append(session._context, session._key.Value);
            }
            else if (session._deleteCookie)
            {
                session._services.Cookie.Delete(session._context);
            }

            return Task.CompletedTask;
        }, this);
    }

    /// <summary>Folds what was just committed into the loaded values and starts an empty delta.</summary>
    private void StartNextDelta()
    {
        if (_changes.Count > 0 || _cleared)
        {
            var values = _cleared ? new Dictionary<string, byte[]>(StringComparer.Ordinal) : new Dictionary<string, byte[]>(_values, StringComparer.Ordinal);
            foreach (var (name, value) in _changes)
            {
                if (value is null)
                {
                    values.Remove(name);
                }
                else
                {
                    values[name] = value;
                }
            }

            _values = values;
        }

        _changes.Clear();
        _cleared = false;
        _newProfiles.Clear();
    }

    private void EnsureWritable()
    {
        switch (_refusal)
        {
            case WriteRefusal.LockWaitTimedOut:
                throw new InvalidOperationException(
                    $"The wait for the lock of session {Hash} timed out (AsmSessionOptions.LockWaitTimeout), and " +
                    "LockWaitFailure.ContinueReadOnly went on without it: the session is read-only for this request.");
            case WriteRefusal.LockLost:
                throw new InvalidOperationException(
                    $"The lock lease of session {Hash} was lost (a commit was refused): nothing more can be written in this request.");
            case WriteRefusal.Ended:
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
        if (!_available)
        {
            throw new InvalidOperationException("The session is unavailable for this request: its storage could not be reached.");
        }
    }

    private void EnsureResponseNotStarted(string what)
    {
        if (_context.Response.HasStarted)
        {
            throw new InvalidOperationException($"The session cannot be {what} after the response has started: the new cookie could not be sent.");
        }
    }

    /// <summary>Runs one storage operation under <see cref="AsmSessionOptions.IOTimeout"/>, with failures made clear.</summary>
    /// <remarks>
    /// An operation that completes later resumes on the thread pool, never inline on the thread that completed it: a
    /// driver's I/O thread (StackExchange.Redis completes its replies in order on one) must not go on to run the
    /// request, which may then block on the session (<see cref="ISession.Set"/> takes the lock synchronously in
    /// <see cref="SessionLockMode.LockOnWrite"/>) and wait for a reply that thread can no longer deliver.
    /// </remarks>
    private async Task<T> StorageAsync<T>(string what, Func<CancellationToken, ValueTask<T>> operation, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.IOTimeout);
        try
        {
            var pending = operation(timeout.Token);
            return pending.IsCompleted
                ? pending.Result
                : await pending.AsTask().ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException($"Timed out {what} the session (AsmSessionOptions.IOTimeout is {_options.IOTimeout}).", ex, timeout.Token);
        }
        catch (Exception ex) when (ex is not (OperationCanceledException or SessionStorageException))
        {
            throw new SessionStorageException($"Failed {what} session {Hash}: {ex.Message}", ex);
        }
    }

    private Task<bool> StorageAsync(string what, Func<CancellationToken, ValueTask> operation, CancellationToken cancellationToken) =>
        StorageAsync<bool>(what, async ct =>
        {
            await operation(ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    private static InvalidSessionReason ToReason(SessionLoadStatus status) => status switch
    {
        SessionLoadStatus.Expired => InvalidSessionReason.Expired,
        SessionLoadStatus.Destroyed => InvalidSessionReason.Destroyed,
        SessionLoadStatus.ZombieExpired => InvalidSessionReason.ZombieExpired,
        SessionLoadStatus.Corrupt => InvalidSessionReason.Corrupt,
        _ => InvalidSessionReason.Unknown,
    };

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
