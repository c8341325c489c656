using System.ComponentModel.DataAnnotations;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>Options of the filesystem driver.</summary>
/// <remarks>
/// Several processes on one machine may share the directory; they must run as the same user, since the driver
/// creates the directory readable by its owner only and its files readable and writable by their owner only.
/// </remarks>
public sealed class FileSystemDriverOptions
{
    /// <summary>The directory that holds the session and cache files; created when missing.</summary>
    /// <value>There is no default: the directory must be set.</value>
    [Required(ErrorMessage = "FileSystemDriverOptions.Directory must name the directory that holds session files.")]
    public string Directory { get; set; } = "";

    /// <summary>
    /// How long an operation waits for the file lock of a record, held by another request or process, before it
    /// fails with a <see cref="TimeoutException"/>. Holders keep it for one read and one write, so a long wait means
    /// the disk or a process is stuck.
    /// </summary>
    /// <value>The default value is 10 seconds.</value>
    [Range(typeof(TimeSpan), "00:00:00.1", "00:05:00", ErrorMessage = "FileSystemDriverOptions.FileLockTimeout must be between 100 milliseconds and 5 minutes.")]
    public TimeSpan FileLockTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Whether every write is flushed to disk before it returns: the temporary file is fsynced before it is renamed
    /// over the record, and the directory after the rename. Without it a write is atomic (a reader sees the old file
    /// or the new one, never a torn one) but a power cut or a kernel crash may lose the last writes; with it they
    /// survive, at the cost of two fsyncs per write (a load that slides the idle expiry or takes a lock writes too).
    /// A crash of the process alone never loses a write either way.
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool Durable { get; set; }
}
