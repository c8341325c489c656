namespace Asm.SessionAdapter;

/// <summary>Loading or committing a session failed in its storage (the server is down, a file cannot be written).</summary>
public sealed class SessionStorageException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SessionStorageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
