namespace Asm.Caching.Sessions;

/// <summary>What <see cref="ISessionTrackingDriver.BindUserAsync"/> did.</summary>
/// <param name="Status"><see cref="SessionCommitStatus.Committed"/>, or <see cref="SessionCommitStatus.NotFound"/> when the session is not live under the presented key.</param>
/// <param name="PreviousUserId">The user the session was bound to before, or <see langword="null"/>.</param>
public sealed record SessionBindResult(SessionCommitStatus Status, string? PreviousUserId);
