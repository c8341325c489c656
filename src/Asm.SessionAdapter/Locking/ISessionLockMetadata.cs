namespace Asm.SessionAdapter;

/// <summary>Endpoint metadata that chooses how the endpoint locks its session.</summary>
public interface ISessionLockMetadata
{
    /// <summary>The lock mode of the endpoint.</summary>
    SessionLockMode Mode { get; }
}
