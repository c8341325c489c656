using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter;

/// <summary>Checks <see cref="AsmSessionOptions"/> at start-up; every message names the option and why.</summary>
internal sealed class AsmSessionOptionsValidator : IValidateOptions<AsmSessionOptions>
{
    /// <summary>The longest <see cref="AsmSessionOptions.IdleTimeout"/>, <see cref="AsmSessionOptions.AbsoluteTimeout"/> and <see cref="AsmSessionOptions.ZombieLifetime"/>.</summary>
    private static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(36_500);

    /// <summary>The longest <see cref="AsmSessionOptions.LockLease"/> and <see cref="AsmSessionOptions.IOTimeout"/>.</summary>
    private static readonly TimeSpan MaxLockLease = TimeSpan.FromDays(1);

    public ValidateOptionsResult Validate(string? name, AsmSessionOptions options)
    {
        List<string> failures = [];
        void Positive(TimeSpan value, string option)
        {
            if (value <= TimeSpan.Zero)
            {
                failures.Add($"AsmSessionOptions.{option} must be positive; it is {value}.");
            }
        }

        void AtMost(TimeSpan value, TimeSpan max, string option, string why)
        {
            if (value > max)
            {
                failures.Add($"AsmSessionOptions.{option} is {value}: it must be at most {max:%d} day{(max.Days == 1 ? "" : "s")}, {why}.");
            }
        }

        // Expiry times are the request's time plus these: past the bound they would not be representable dates.
        AtMost(options.IdleTimeout, MaxLifetime, nameof(options.IdleTimeout), "so that expiry times stay representable");
        AtMost(options.AbsoluteTimeout ?? TimeSpan.Zero, MaxLifetime, nameof(options.AbsoluteTimeout),
            "so that expiry times stay representable (null turns the absolute timeout off)");
        AtMost(options.ZombieLifetime, MaxLifetime, nameof(options.ZombieLifetime), "so that expiry times stay representable");
        AtMost(options.LockLease, MaxLockLease, nameof(options.LockLease),
            "since a lease is renewed while its request runs, and a longer one only blocks the session longer when its holder dies");
        // Timeout.InfiniteTimeSpan turns the timeout off, as for the stock session.
        var ioTimeout = options.IOTimeout == Timeout.InfiniteTimeSpan ? TimeSpan.FromMinutes(1) : options.IOTimeout;
        AtMost(ioTimeout, MaxLockLease, nameof(options.IOTimeout),
            "since it bounds one storage call (and a timer cannot be armed for more than 49 days); Timeout.InfiniteTimeSpan turns it off");
        Positive(options.IdleTimeout, nameof(options.IdleTimeout));
        Positive(ioTimeout, nameof(options.IOTimeout));
        Positive(options.LockLease, nameof(options.LockLease));
        if (options.AbsoluteTimeout is { } absolute)
        {
            Positive(absolute, nameof(options.AbsoluteTimeout));
        }

        // An undefined mode (a number bound from configuration) would load without the lock and write without it.
        if (!Enum.IsDefined(options.DefaultLockMode))
        {
            failures.Add($"AsmSessionOptions.DefaultLockMode is {options.DefaultLockMode}, which is not a SessionLockMode: use Exclusive, LockOnWrite, Lockless or ReadOnly.");
        }

        if (!Enum.IsDefined(options.LockWaitFailure))
        {
            failures.Add($"AsmSessionOptions.LockWaitFailure is {options.LockWaitFailure}, which is not a LockWaitFailure: use Throw or ContinueReadOnly.");
        }

        if (options.LockWaitTimeout < TimeSpan.Zero)
        {
            failures.Add($"AsmSessionOptions.LockWaitTimeout must not be negative; it is {options.LockWaitTimeout}.");
        }

        if (options.ZombieLifetime < TimeSpan.Zero)
        {
            failures.Add($"AsmSessionOptions.ZombieLifetime must not be negative; it is {options.ZombieLifetime}.");
        }

        if (options.LockLease < TimeSpan.FromSeconds(1))
        {
            failures.Add($"AsmSessionOptions.LockLease is {options.LockLease}: a lease under 1 second is renewed so often " +
                "that a slow storage round trip loses it. Use at least 1 second.");
        }

        if (options.MaxSessionSize <= 0)
        {
            failures.Add($"AsmSessionOptions.MaxSessionSize must be positive; it is {options.MaxSessionSize}.");
        }

        if (options.MaxProfiles is < 1 or > 64)
        {
            failures.Add($"AsmSessionOptions.MaxProfiles must be between 1 and 64; it is {options.MaxProfiles}.");
        }

        if (options.MaxSessionsPerUser is < 1)
        {
            failures.Add($"AsmSessionOptions.MaxSessionsPerUser must be at least 1 (or null for no cap); it is {options.MaxSessionsPerUser}.");
        }

        if (string.IsNullOrWhiteSpace(options.Cookie?.Name))
        {
            failures.Add("AsmSessionOptions.Cookie.Name must be set.");
        }

        // The stock session's cookie throws when it is set; a plain CookieBuilder takes it, and it would do nothing.
        if (options.Cookie?.Expiration is not null)
        {
            failures.Add("AsmSessionOptions.Cookie.Expiration cannot be set, as for the stock session's cookie: the session ends " +
                "after IdleTimeout or AbsoluteTimeout; use Cookie.MaxAge to keep the cookie after the browser closes.");
        }

        if (options.UseHostPrefix && (!string.IsNullOrEmpty(options.Cookie?.Domain) || options.Cookie?.Path is not (null or "/")))
        {
            failures.Add("AsmSessionOptions.UseHostPrefix needs a host-only cookie with Path=/: clear Cookie.Domain and set Cookie.Path to \"/\".");
        }

        if (options.Events is null)
        {
            failures.Add("AsmSessionOptions.Events must not be null.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
