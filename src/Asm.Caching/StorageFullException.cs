namespace Asm.Caching;

/// <summary>
/// A new session or cache entry was refused because the storage reached its limit (for the in-memory driver,
/// <see cref="Drivers.InMemory.InMemoryDriverOptions.SizeLimit"/>). Nothing was written and nothing was evicted; the
/// storage accepts new records again once some expire.
/// </summary>
public sealed class StorageFullException : IOException
{
    /// <summary>Creates the exception.</summary>
    public StorageFullException()
        : this("The storage is full.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public StorageFullException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public StorageFullException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
