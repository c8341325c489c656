using System.Collections.Concurrent;

namespace Asm.SessionAdapter.Tests.Identity;

/// <summary>
/// Session events that remember what fired and for which request path, then run the handlers a test set.
/// </summary>
internal sealed class RecordingSessionEvents : AsmSessionEvents
{
    private readonly ConcurrentQueue<(string Path, InvalidSessionReason Reason)> _invalid = new();
    private readonly ConcurrentQueue<string> _zombies = new();
    private readonly ConcurrentQueue<ProfileChange> _profileChanges = new();
    private readonly ConcurrentQueue<(string SessionId, string? UserId, SessionEndReason Reason)> _ended = new();

    /// <summary>Every <see cref="AsmSessionEvents.OnInvalidSessionAccessed"/>, as request path and reason.</summary>
    public IReadOnlyList<(string Path, InvalidSessionReason Reason)> Invalid => [.. _invalid];

    /// <summary>The request path of every <see cref="AsmSessionEvents.OnZombieKeyAccessed"/>.</summary>
    public IReadOnlyList<string> Zombies => [.. _zombies];

    /// <summary>Every <see cref="AsmSessionEvents.OnProfileChanged"/>.</summary>
    public IReadOnlyList<ProfileChange> ProfileChanges => [.. _profileChanges];

    /// <summary>Every <see cref="AsmSessionEvents.OnSessionEnded"/>, as session id, user id and reason.</summary>
    public IReadOnlyList<(string SessionId, string? UserId, SessionEndReason Reason)> Ended => [.. _ended];

    public override Task InvalidSessionAccessed(InvalidSessionContext context)
    {
        _invalid.Enqueue((context.HttpContext.Request.Path, context.Reason));
        return base.InvalidSessionAccessed(context);
    }

    public override Task ZombieKeyAccessed(ZombieKeyContext context)
    {
        _zombies.Enqueue(context.HttpContext.Request.Path);
        return base.ZombieKeyAccessed(context);
    }

    public override Task SessionEnded(SessionEndedContext context)
    {
        _ended.Enqueue((context.SessionId, context.UserId, context.Reason));
        return base.SessionEnded(context);
    }

    public override async Task ProfileChanged(ProfileChangedContext context)
    {
        await base.ProfileChanged(context);
        _profileChanges.Enqueue(new ProfileChange(context.CurrentProfile, [.. context.PreviousProfiles], context.IsRejected));
    }

    /// <summary>What one <see cref="AsmSessionEvents.OnProfileChanged"/> was told, and whether its handler rejected.</summary>
    public sealed record ProfileChange(string CurrentProfile, IReadOnlyList<string> PreviousProfiles, bool Rejected);
}
