using System.ComponentModel.DataAnnotations;

namespace Asm.Caching.Drivers.FileSystem;

/// <summary>Options of the filesystem driver.</summary>
public sealed class FileSystemDriverOptions
{
    /// <summary>The directory that holds the session and cache files; created when missing.</summary>
    /// <value>There is no default: the directory must be set.</value>
    [Required(ErrorMessage = "FileSystemDriverOptions.Directory must name the directory that holds session files.")]
    public string Directory { get; set; } = "";
}
