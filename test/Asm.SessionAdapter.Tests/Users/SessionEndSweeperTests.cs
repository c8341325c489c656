using Asm.Caching;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Users;

/// <summary>The background sweep that reports ends, as an app runs it: on its own timer, with the real clock.</summary>
public sealed class SessionEndSweeperTests
{
    [Fact]
    public async Task BackgroundSweep_ReportsAnIdleSessionsEnd_WithoutAnyRequest()
    {
        var ended = new TaskCompletionSource<SessionEndedContext>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await SessionApp.StartAsync(
            b => new InMemoryDriverFixture().Use(b, "sweeper"),
            a => a.MapPost("/bind", (HttpContext c) => c.Session.BindUserAsync("ada")),
            o =>
            {
                // The record is purged one IdleTimeout after its end, and a sweep that comes later finds nothing to
                // report: 5 s of slack for a sweep that a loaded machine delays (1 s lost one run's report).
                o.IdleTimeout = TimeSpan.FromSeconds(5);
                o.ZombieLifetime = TimeSpan.FromSeconds(1);
                o.Events.OnSessionEnded = c =>
                {
                    ended.TrySetResult(c);
                    return Task.CompletedTask;
                };
            },
            services: s => s.Configure<SweepOptions>(o => o.Interval = TimeSpan.FromSeconds(1)));

        await app.CreateClient().PostAsync("/bind", null);

        // Within two intervals of the end on an idle machine; the deadline is generous for a loaded one.
        var context = await ended.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(("ada", SessionEndReason.IdleTimeout), (context.UserId, context.Reason));
    }
}
