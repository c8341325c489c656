namespace Asm.Testing.Redis;

/// <summary>Redis answered a test administration command with an error reply.</summary>
public sealed class RedisErrorReplyException(string message) : Exception(message)
{
    /// <summary>The error reply, such as <c>MOVED 866 127.0.0.1:30002</c>.</summary>
    public string Reply => Message;
}
