namespace Asm.Caching.Sessions;

/// <summary>What <see cref="ISessionTransferDriver.ExportAsync(string, SessionLease, DateTimeOffset, CancellationToken)"/> found.</summary>
public sealed class SessionExportResult
{
    /// <summary>
    /// <see cref="SessionLoadStatus.Found"/> with <see cref="Snapshot"/> and <see cref="Lease"/>, or why there is none.
    /// </summary>
    public required SessionLoadStatus Status { get; init; }

    /// <summary>The whole record, when it was exported.</summary>
    public SessionSnapshot? Snapshot { get; init; }

    /// <summary>
    /// The granted lease (with its fencing value), when the record was exported. <see langword="null"/> with
    /// <see cref="SessionLoadStatus.Found"/> when the storage takes no writes (the filesystem driver on a read-only file
    /// system): the record was read as it stands, and nobody can lock, change or end it there.
    /// </summary>
    public SessionLease? Lease { get; init; }

    /// <summary>Creates a result that carries only a status.</summary>
    public static SessionExportResult Of(SessionLoadStatus status) => new() { Status = status };
}
