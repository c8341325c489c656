namespace Asm.Caching.Drivers.Redis;

/// <summary>
/// A session or cache operation could not be carried out because Redis could not be reached, did not answer in
/// time, or refused the command. The message names Redis and its endpoints (never a session key). The driver
/// reconnects by itself: a later operation succeeds once Redis is back.
/// </summary>
public sealed class RedisDriverException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public RedisDriverException()
        : this("Redis could not carry out the operation.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public RedisDriverException(string message)
        : base(message)
    {
        EndPoints = "";
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public RedisDriverException(string message, Exception? innerException)
        : base(message, innerException)
    {
        EndPoints = "";
    }

    /// <summary>Creates the exception with a message, the endpoints concerned and the cause.</summary>
    public RedisDriverException(string message, string endPoints, Exception? innerException)
        : base(message, innerException)
    {
        EndPoints = endPoints;
    }

    /// <summary>The Redis endpoints the driver was configured with, comma-separated.</summary>
    public string EndPoints { get; }
}
