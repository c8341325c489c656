using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Locking;

/// <summary>
/// An app that commits by itself (<c>await Session.CommitAsync()</c>, as the stock session allows) before the
/// middleware commits again at the end of the request: the second commit must not write the first one's changes a
/// second time, without the lock, over a later request's.
/// </summary>
public sealed class ExplicitCommitTests
{
    [Fact]
    public async Task CommitAsync_ByTheAppThenByTheMiddleware_DoesNotOverwriteALaterRequestsCommit()
    {
        var committed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finish = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await SessionApp.StartAsync(b => b.UseInMemoryDriver(), a =>
        {
            a.MapPost("/inc", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                c.Session.SetInt32("n", (c.Session.GetInt32("n") ?? 0) + 1);
                return c.Session.GetInt32("n");
            });
            a.MapPost("/inc-commit-then-wait", async (HttpContext c) =>
            {
                await c.Session.LoadAsync();
                c.Session.SetInt32("n", (c.Session.GetInt32("n") ?? 0) + 1);
                await c.Session.CommitAsync();
                committed.SetResult();
                await finish.Task;
                return c.Session.GetInt32("n");
            });
            a.MapGet("/n", (HttpContext c) => c.Session.GetInt32("n") ?? 0).WithSessionLock(SessionLockMode.ReadOnly);
        });
        var client = app.CreateClient();
        (await client.PostAsync("/inc", null)).EnsureSuccessStatusCode();

        var first = client.PostAsync("/inc-commit-then-wait", null);
        await committed.Task;
        Assert.Equal("3", await (await client.PostAsync("/inc", null)).EnsureSuccessStatusCode().Content.ReadAsStringAsync());
        finish.SetResult();

        Assert.Equal("2", await (await first).EnsureSuccessStatusCode().Content.ReadAsStringAsync());
        Assert.Equal("3", await client.GetStringAsync("/n"));
    }
}
