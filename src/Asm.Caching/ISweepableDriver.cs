namespace Asm.Caching;

/// <summary>A driver whose storage does not expire entries by itself and must be swept.</summary>
public interface ISweepableDriver
{
    /// <summary>Removes everything that expired before <paramref name="now"/>; returns how many entries went.</summary>
    ValueTask<int> SweepAsync(DateTimeOffset now, CancellationToken cancellationToken);
}
