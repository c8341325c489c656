using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter;

/// <summary>
/// A session is used from a client profile (by default IP address and User-Agent) it has not been used from before.
/// By default the profile is accepted and recorded; <see cref="Reject"/> gives the request a fresh, empty session and
/// leaves the original untouched for its owner.
/// </summary>
public sealed class ProfileChangedContext(HttpContext httpContext, string sessionHash, string currentProfile, IReadOnlyList<string> previousProfiles)
    : AsmSessionEventContext(httpContext, sessionHash)
{
    /// <summary>The profile of this request.</summary>
    public string CurrentProfile { get; } = currentProfile;

    /// <summary>The profiles the session has been used from, oldest first.</summary>
    public IReadOnlyList<string> PreviousProfiles { get; } = previousProfiles;

    /// <summary>Whether <see cref="Reject"/> was called.</summary>
    public bool IsRejected { get; private set; }

    /// <summary>Refuses the session to this request, which gets a fresh, empty one instead.</summary>
    public void Reject() => IsRejected = true;
}
