using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Sessions;

/// <summary>What the profile check reads of the request, and on which thread it first reads it.</summary>
public sealed class SessionProfileCheckTests
{
    [Fact]
    public async Task SessionMade_OnAServerWithoutAConnectionFeature_HasItMadeBeforeTheEndpointRuns_NotByTheLoadsContinuation()
    {
        // TestServer has no connection feature: the first read of HttpContext.Connection adds one to the request's
        // features. The profile check reads it after the storage call, on another thread than the endpoint's; the
        // session must have made it already, while the request was on one thread.
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a => a.MapGet("/features", async (HttpContext c) =>
            {
                var made = c.Features.Get<IHttpConnectionFeature>() is not null;
                await c.Session.LoadAsync();
                return made ? "made" : "missing";
            }));

        Assert.Equal("made", await app.CreateClient().GetStringAsync("/features"));
    }

    [Fact]
    public async Task ProfilesOff_TheSessionDoesNotReadTheConnection()
    {
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a => a.MapGet("/features", (HttpContext c) => c.Features.Get<IHttpConnectionFeature>() is null ? "missing" : "made"),
            o => o.ProfileProvider = null);

        Assert.Equal("missing", await app.CreateClient().GetStringAsync("/features"));
    }
}
