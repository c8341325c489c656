using System.Diagnostics.CodeAnalysis;
using System.Text;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Import;
using Asm.SessionAdapter.Users;
using Microsoft.AspNetCore.Http;

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
            _changes[key] = [.. value];
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
    }

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
        }
    }

    public async Task AcquireWriteLockAsync(CancellationToken cancellationToken = default)
    {
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        EnsureAvailable();
        if (_lease is null && _stored)
        {
            var result = await LoadLockedAsync(_key, cancellationToken).ConfigureAwait(false);
            if (result.Status is SessionLoadStatus.Found or SessionLoadStatus.Zombie)
            {
                _values = result.Values;
                Hold(result.Lease!);
            }
            else
            {
                // The session went away (destroyed, expired) between the read and the write.
                await RejectPresentedKeyAsync(ToReason(result.Status)).ConfigureAwait(false);
            }
        }

        _mode = SessionLockMode.Exclusive;
    }

    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        StopRenewal();
        var lease = _lease;
        _lease = null;
        var hasWrites = _loaded && _available && (_changes.Count > 0 || _cleared || _newProfiles.Count > 0);
        if (!_stored)
        {
            // A new session is stored once it holds something; its client profile alone is not worth a record.
            if (hasWrites && (_changes.Count > 0 || _cleared))
            {
                await CreateAsync(cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        using var activity = AsmSessionMetrics.ActivitySource.StartActivity(AsmSessionMetricNames.CommitActivity);
        try
        {
            var outcome = await CommitStoredAsync(lease, hasWrites, cancellationToken).ConfigureAwait(false);
            AsmSessionMetrics.SetOutcome(activity, outcome, error: outcome is "lock_lost" or "not_found");
        }
        catch (Exception ex)
        {
            AsmSessionMetrics.SetError(activity, ex);
            throw;
        }
    }

    /// <summary>Commits a stored session's changes, or releases its lock; returns the outcome for the activity.</summary>
    private async Task<string> CommitStoredAsync(SessionLease? lease, bool hasWrites, CancellationToken cancellationToken)
    {
        if (!hasWrites)
        {
            // Also reached when loading failed half-way (an event handler threw): the lock must not outlive the request.
            if (lease is not null)
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
            ReleaseLock = lease is not null,
            Clear = _cleared,
            Changes = _changes,
            AddProfiles = _newProfiles,
            MaxProfiles = _options.MaxProfiles,
        };
        var status = await StorageAsync("committing", ct => _services.Driver.CommitAsync(request, ct), cancellationToken).ConfigureAwait(false);
        switch (status)
        {
            case SessionCommitStatus.LockLost:
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
        EnsureResponseNotStarted("regenerated");
        var newKey = _key.WithNewSecret();
        if (_stored)
        {
            var now = _services.Time.GetUtcNow();
            var request = new SessionRegenerateRequest
            {
                Key = _key,
                NewSecret = newKey.Secret,
                Now = now,
                ZombieExpiresAt = now + _options.ZombieLifetime,
                Profile = _options.ProfileProvider?.Invoke(_context),
            };
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
        var now = _services.Time.GetUtcNow();
        var request = new SessionRegenerateRequest
        {
            Key = _key,
            NewSecret = newKey.Secret,
            Now = now,
            ZombieExpiresAt = now + _options.ZombieLifetime,
            Profile = _options.ProfileProvider?.Invoke(_context),
        };
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

    public async Task DestroyAsync(CancellationToken cancellationToken = default)
    {
        await LoadAsync(cancellationToken).ConfigureAwait(false);
        EnsureAvailable();
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
            _deleteCookie = true;
            RegisterCookieCallback();
        }
    }

    private async Task AdoptAsync(SessionKey key, SessionLoadResult result, CancellationToken cancellationToken)
    {
        if (result.Status is not (SessionLoadStatus.Found or SessionLoadStatus.Zombie))
        {
            await RejectPresentedKeyAsync(ToReason(result.Status)).ConfigureAwait(false);
            return;
        }

        _key = result.CurrentSecret is { } current ? SessionKey.Create(key.Id, current) : key;
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
            _services.Metrics.ZombieHit();
            Log.ZombieHit(_services.Logger, Hash);
            if (!_context.Response.HasStarted)
            {
                SendKey();
            }

            await _options.Events.ZombieKeyAccessed(new ZombieKeyContext(_context, Hash)).ConfigureAwait(false);
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
                StopRenewal();
                if (_lease is { } lease)
                {
                    _lease = null;
                    var id = _key.Id;
                    await StorageAsync("releasing the lock of", ct => _services.Driver.ReleaseLockAsync(id, lease, ct), cancellationToken)
                        .ConfigureAwait(false);
                }

                StartNewSession();
                return;
            }
        }

        _newProfiles.Add(profile);
    }

    private async Task RejectPresentedKeyAsync(InvalidSessionReason reason)
    {
        StartNewSession();
        _loaded = true;
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
        var status = await StorageAsync("creating", ct => _services.Driver.CommitAsync(request, ct), cancellationToken).ConfigureAwait(false);
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

    /// <summary>Checks that this request may write, taking the lock first in <see cref="SessionLockMode.LockOnWrite"/>.</summary>
    private bool PrepareWrite()
    {
        Load();
        if (!_available)
        {
            return false;
        }

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

    private void SendKey()
    {
        _sendKey = true;
        _deleteCookie = false;
        RegisterCookieCallback();
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
