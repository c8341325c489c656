using System.ComponentModel.DataAnnotations;

namespace Asm.Caching;

/// <summary>How often expired sessions and cache entries are removed from drivers that do not expire them themselves.</summary>
public sealed class SweepOptions
{
    /// <summary>The time between two sweeps.</summary>
    /// <value>The default value is 1 minute.</value>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "SweepOptions.Interval must be between 1 second and 1 day.")]
    public TimeSpan Interval { get; set; } = TimeSpan.FromMinutes(1);
}
