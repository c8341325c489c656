using Asm.Caching.Sessions;
using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter.Sessions;

/// <summary>
/// The client-profile checks of one request (see <see cref="AsmSessionOptions.ProfileProvider"/>): whether a zombie
/// key may serve it, and whether a session used from a profile it has not seen is adopted or refused
/// (<see cref="AsmSessionEvents.OnProfileChanged"/>). The provider is asked each time, as the request is at that moment.
/// </summary>
/// <remarks>A value in its session, not an object of its own: every request makes one.</remarks>
internal readonly struct SessionProfileCheck
{
    private static readonly Func<HttpContext, string?> DefaultProvider = AsmSessionOptions.DefaultProfile;

    private readonly AsmSessionOptions _options;
    private readonly HttpContext _context;
    private readonly SessionTelemetry _telemetry;

    /// <summary>Made with the session, on the request's own thread, before anything of it waits for storage.</summary>
    /// <remarks>
    /// The checks run after the session's storage call, on whatever thread its answer resumes, while the request's
    /// thread may be reading the request's features (the endpoint's own code after it started the load). A server
    /// without a connection feature (<c>TestServer</c>) has one made, and added to the request's features, on the first
    /// read of <see cref="HttpContext.Connection"/>; added from the other thread, it would change the features under
    /// that read (a <see cref="NullReferenceException"/> inside the framework). So the connection is read here first.
    /// </remarks>
    public SessionProfileCheck(AsmSessionOptions options, HttpContext context, SessionTelemetry telemetry)
    {
        _options = options;
        _context = context;
        _telemetry = telemetry;
        if (options.ProfileProvider is not null)
        {
            _ = context.Connection.RemoteIpAddress;
        }
    }

    /// <summary>
    /// This request's client profile, or <see langword="null"/> when profiles are off or the provider gives none: an
    /// empty profile is none, as the Redis layout (which stores no empty profile beside a zombie secret) reads it.
    /// </summary>
    public string? Current => _options.ProfileProvider?.Invoke(_context) is { Length: > 0 } profile ? profile : null;

    /// <summary>
    /// Whether a zombie key may serve this request: only the profile of the request that regenerated
    /// (<paramref name="regeneratingProfile"/>) may use it, when both are known.
    /// </summary>
    public bool MayUseZombie(string? regeneratingProfile) =>
        Current is not { } profile || regeneratingProfile is null || string.Equals(profile, regeneratingProfile, StringComparison.Ordinal);

    /// <summary>
    /// Whether a request whose key <paramref name="unlocked"/> answers (a load without the lease) may wait for the
    /// session's lock: only when the key opens the session for it. Any other key is refused at once, never after a
    /// wait that would tell it that the owner is busy.
    /// </summary>
    public bool MayWaitForLock(SessionLoadResult unlocked) =>
        unlocked.Status == SessionLoadStatus.Found || (unlocked.Status == SessionLoadStatus.Zombie && MayUseZombie(unlocked.ZombieProfile));

    /// <summary>
    /// Checks this request's profile against the session's <paramref name="previous"/> ones, raising
    /// <see cref="AsmSessionEvents.OnProfileChanged"/> for a profile the session has not seen.
    /// </summary>
    /// <param name="session">The session whose load raises the event (see <see cref="LoadEventFlow"/>).</param>
    /// <param name="sessionId">Its id.</param>
    /// <param name="previous">Its profiles so far.</param>
    /// <returns>Whether the handler rejected the request, and the profile to add to the session if any.</returns>
    public async ValueTask<ProfileVerdict> CheckAsync(object session, string sessionId, IReadOnlyList<string> previous)
    {
        if (DefaultProfileSeen(previous) || Current is not { } profile || Seen(previous, profile))
        {
            return default;
        }

        if (previous.Count > 0)
        {
            var changed = new ProfileChangedContext(_context, _telemetry.Hash(sessionId), profile, previous);
            await LoadEventFlow.RaiseAsync(session, _options.Events.ProfileChanged, changed).ConfigureAwait(false);
            _telemetry.ProfileChanged(sessionId, changed.IsRejected);
            if (changed.IsRejected)
            {
                return new ProfileVerdict(Rejected: true, NewProfile: null);
            }
        }

        return new ProfileVerdict(Rejected: false, NewProfile: profile);
    }

    /// <summary>
    /// Whether the provider is <see cref="AsmSessionOptions.DefaultProfile"/> and the request's profile is one of
    /// <paramref name="previous"/>, found without making the profile's string (a session's usual request).
    /// <see langword="false"/> also when that cannot be told this way: the caller then asks the provider.
    /// </summary>
    private bool DefaultProfileSeen(IReadOnlyList<string> previous)
    {
        if (previous.Count == 0 || _options.ProfileProvider != DefaultProvider)
        {
            return false;
        }

        Span<char> profile = stackalloc char[256];
        return AsmSessionOptions.TryWriteDefaultProfile(_context, profile, out var written) && Seen(previous, profile[..written]);
    }

    private static bool Seen(IReadOnlyList<string> previous, ReadOnlySpan<char> profile)
    {
        for (var i = 0; i < previous.Count; i++)
        {
            if (profile.SequenceEqual(previous[i]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>What <see cref="CheckAsync"/> decided.</summary>
    /// <param name="Rejected">The request must not use the session: it gets a fresh one.</param>
    /// <param name="NewProfile">A profile the session has not seen, to store with the next write.</param>
    internal readonly record struct ProfileVerdict(bool Rejected, string? NewProfile);
}
