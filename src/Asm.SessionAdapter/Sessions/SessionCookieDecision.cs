namespace Asm.SessionAdapter.Sessions;

/// <summary>What a response does with the session cookie.</summary>
internal enum SessionCookieDecision
{
    /// <summary>Nothing: the browser keeps what it has.</summary>
    None,

    /// <summary>Sets the cookie to the session's key.</summary>
    SendKey,

    /// <summary>Deletes the presented cookie (an expired <c>Set-Cookie</c> with the same name, path and domain).</summary>
    Delete,
}
