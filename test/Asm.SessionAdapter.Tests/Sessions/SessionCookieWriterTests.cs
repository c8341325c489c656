using Asm.SessionAdapter.Sessions;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;

namespace Asm.SessionAdapter.Tests.Sessions;

/// <summary>Whether a response carries the session cookie, decided in one place and written as the response starts.</summary>
public sealed class SessionCookieWriterTests
{
    private const string Name = ".AspNetCore.Session";

    [Fact]
    public void NothingAsked_WritesNoCookie()
    {
        var (context, writer, _) = Create();

        writer.Write();

        Assert.Equal(SessionCookieDecision.None, writer.Decision);
        Assert.Equal(0, context.Response.Headers.SetCookie.Count);
    }

    [Fact]
    public void SendingTheKey_WinsOverADelete_AndWritesTheKeyCurrentWhenTheResponseStarts()
    {
        var (context, writer, key) = Create();
        writer.Delete();
        writer.SendKey();
        key.Value = "regenerated";

        writer.Write();

        Assert.Equal(SessionCookieDecision.SendKey, writer.Decision);
        var cookie = SetCookieHeaderValue.Parse(Assert.Single(context.Response.Headers.SetCookie.ToArray()));
        Assert.Equal(Name, cookie.Name.ToString());
        Assert.Null(cookie.Expires);
        Assert.Equal("no-cache,no-store", context.Response.Headers.CacheControl.ToString());
    }

    [Fact]
    public void CancellingTheKey_FallsBackToTheDeleteOfThePresentedCookie()
    {
        var (context, writer, _) = Create();
        writer.SendKey();
        writer.Delete();
        writer.CancelKey();

        writer.Write();

        Assert.Equal(SessionCookieDecision.Delete, writer.Decision);
        var cookie = SetCookieHeaderValue.Parse(Assert.Single(context.Response.Headers.SetCookie.ToArray()));
        Assert.True(cookie.Expires < DateTimeOffset.UtcNow);
    }

    [Fact]
    public void AfterTheResponseStarted_ADeleteIsNotAsked_AndANewKeyCannotBeEstablished()
    {
        var (_, writer, _) = Create(started: true);

        writer.Delete();

        Assert.Equal(SessionCookieDecision.None, writer.Decision);
        Assert.Throws<InvalidOperationException>(writer.Establish);
        Assert.Throws<InvalidOperationException>(() => writer.EnsureResponseNotStarted("regenerated"));
        Assert.False(writer.SendsKey);
    }

    private static (DefaultHttpContext Context, SessionCookieWriter Writer, KeyBox Key) Create(bool started = false)
    {
        var context = new DefaultHttpContext();
        if (started)
        {
            context.Features.Set<IHttpResponseFeature>(new StartedResponse());
        }

        var key = new KeyBox("initial");
        var cookie = new SessionCookie(new CookieBuilder { Name = Name }, new EphemeralDataProtectionProvider());
        return (context, new SessionCookieWriter(context, cookie, static box => ((KeyBox)box).Value, key), key);
    }

    private sealed class StartedResponse : HttpResponseFeature
    {
        public override bool HasStarted => true;
    }

    /// <summary>A mutable box the writer's key callback reads (the session's current key).</summary>
    private sealed class KeyBox(string value)
    {
        public string Value { get; set; } = value;
    }
}
