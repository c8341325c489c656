using System.Diagnostics.CodeAnalysis;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Sessions;
using Asm.SessionAdapter.Storage;
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
/// <para>
/// This class holds the lifecycle (<see cref="SessionState"/>) and the session's identity (key, stored, user); the
/// rest is its parts': the values and change set (<see cref="SessionChangeSet"/>), the lock
/// (<see cref="SessionLockHolder"/>), the cookie (<see cref="SessionCookieWriter"/>), the client-profile checks
/// (<see cref="SessionProfileCheck"/>), logs and metrics (<see cref="SessionTelemetry"/>), storage calls under the
/// I/O timeout (<see cref="GuardedSessionDriver"/>), and one load or escalation at a time (<see cref="SessionStepGate"/>).
/// Its own code is split by concern: reading and writing values here, loading in <c>AsmSession.Load.cs</c>,
/// committing in <c>AsmSession.Commit.cs</c>, regeneration, user binding and destroy in <c>AsmSession.Identity.cs</c>.
/// </para>
/// </remarks>
internal sealed partial class AsmSession : IAsmSession
{
    private readonly AsmSessionServices _services;
    private readonly HttpContext _context;
    private readonly string? _presentedKey;
    private readonly SessionLifecycle _lifecycle;
    private readonly SessionTelemetry _telemetry;
    private readonly SessionChangeSet _values = new();
    private readonly SessionLockHolder _lock;
    private readonly SessionCookieWriter _cookie;
    private readonly SessionProfileCheck _profiles;
    private readonly SessionStepGate _steps = new();

    private SessionState _state;
    private SessionKey _key;
    private bool _stored;
    private SessionLockMode _mode;
    private string? _userId;
    private bool _servedByZombie;

    /// <summary>When the request arrived (the session middleware made its session), in Unix milliseconds.</summary>
    private readonly long _arrivedAt;

    /// <summary>
    /// The presented key was refused because it was replaced while this request ran (a login in another request, whose
    /// zombie window closed before this request first needed the session). The browser likely holds the new key: this
    /// request's fresh session is never stored and never sent, and cannot be regenerated or bound.
    /// </summary>
    private bool _keyReplacedWhileRunning;

    public AsmSession(AsmSessionServices services, HttpContext context, string? presentedKey, SessionLifecycle lifecycle)
    {
        _lifecycle = lifecycle;
        _services = services;
        _context = context;
        _presentedKey = presentedKey;
        _arrivedAt = services.Time.GetUtcNow().ToUnixTimeMilliseconds();
        _telemetry = new SessionTelemetry(services.Metrics, services.Logger);
        _profiles = new SessionProfileCheck(Options, context, _telemetry);
        _lock = new SessionLockHolder(Storage, Options, services.Time, _telemetry, services.LockQueue, services.RenewalTimers, _profiles);
        _cookie = new SessionCookieWriter(context, services.Cookie, static session => ((AsmSession)session)._key.Value, this);
        _cookie.RegisterEarly();
    }

    /// <summary>The options, read through the shared services rather than kept per request.</summary>
    private AsmSessionOptions Options => _services.Options;

    /// <summary>Storage under the I/O timeout, read through the shared services rather than kept per request.</summary>
    private GuardedSessionDriver Storage => _services.Storage;

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

        if (PrepareWrite() && !_values.TrySet(key, value, Options.MaxSessionSize))
        {
            throw TooLarge();
        }
    }

    public void Remove(string key)
    {
        ArgumentNullException.ThrowIfNull(key);

        // A name no value can have (Set refuses it) has nothing to remove, and the commit would refuse it, all changes with it.
        if (PrepareWrite(establish: false) && SessionValueName.IsValid(key))
        {
            _values.Remove(key);
        }
    }

    public void Clear()
    {
        if (PrepareWrite(establish: false))
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

    /// <summary>Checks that this request may write, taking the lock first in <see cref="SessionLockMode.LockOnWrite"/>.</summary>
    /// <param name="establish">
    /// Whether the write makes a new session worth storing (a <c>Set</c>); a <c>Remove</c> or <c>Clear</c> does not:
    /// as with the stock session, it stores nothing and sends no cookie when there is no session yet.
    /// </param>
    /// <returns>Whether there is something to write to: <see langword="false"/> when the session is unavailable, or
    /// when a removal or a clear finds no session.</returns>
    private bool PrepareWrite(bool establish = true)
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
            if (!establish)
            {
                return false;
            }

            if (_keyReplacedWhileRunning)
            {
                // Its key would replace the browser's current cookie: the write stays in this request's fresh session.
                return true;
            }

            _cookie.Establish();
        }

        return true;
    }

    private InvalidOperationException RequestEnded() => new(
        $"The request of session {Hash} has ended (the session middleware made its final commit), so nothing " +
        "written now would be stored. Write the session while the request runs; reading it is still allowed.");

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
                    $"The lock lease of session {Hash} was lost (a commit was refused, or failed and gave it back): nothing more can be written in this request.");
            case SessionState.Ended or SessionState.EndedNotLoaded:
                throw RequestEnded();
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

        if (_keyReplacedWhileRunning)
        {
            throw new InvalidOperationException(
                $"The session key this request presented was replaced (a login) while it ran, and its zombie window has closed, so its fresh session {Hash} cannot be {what} here: " +
                "its cookie would replace the one the browser holds now.");
        }
    }

    private void EnsureAvailable()
    {
        if (_state == SessionState.Unavailable)
        {
            throw new InvalidOperationException("The session is unavailable for this request: its storage could not be reached.");
        }
    }
}
