using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Locking;

/// <summary>A lock mode that is not a <see cref="SessionLockMode"/> (a number cast to it) never loads or writes without the lock.</summary>
public sealed class SessionLockMetadataTests
{
    [Fact]
    public void SessionLockAttributeAndWithSessionLock_OfAnUndefinedMode_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SessionLockAttribute((SessionLockMode)9));

        var app = WebApplication.CreateSlimBuilder().Build();
        Assert.Throws<ArgumentOutOfRangeException>(() => app.MapGet("/", () => "").WithSessionLock((SessionLockMode)9));
    }

    [Fact]
    public async Task EndpointMetadataOfTheAppsOwn_WithAnUndefinedMode_FailsTheLoad_NeverLoadsWithoutTheLock()
    {
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a => a.MapGet("/read", async (HttpContext c) =>
            {
                try
                {
                    await c.Session.LoadAsync();
                    return "loaded";
                }
                catch (InvalidOperationException e)
                {
                    return e.Message;
                }
            }).WithMetadata(new UndefinedLockMode()));

        var answer = await app.CreateClient().GetStringAsync("/read");

        Assert.Contains("asks for session lock mode 9, which is not a SessionLockMode", answer, StringComparison.Ordinal);
    }

    private sealed class UndefinedLockMode : ISessionLockMetadata
    {
        public SessionLockMode Mode => (SessionLockMode)9;
    }
}
