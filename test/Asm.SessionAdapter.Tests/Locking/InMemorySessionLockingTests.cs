using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Locking;

public sealed class InMemorySessionLockingTests(InMemoryDriverFixture driver) : SessionLockingTests<InMemoryDriverFixture>(driver)
{
    [Fact]
    public async Task Exclusive_ParallelIncrementsOverFourSessionsWhileLeasesRenew_CountEveryOneAndLeaveTheQueueEmpty()
    {
        // Four sessions at once: the lock queue's lines are freed and reused by the other sessions all the time, while
        // the renewal timers (a third of a 2 s lease) are lent from one holder to the next and tick into their holds.
        await using var app = await StartAsync(o =>
        {
            o.LockLease = TimeSpan.FromSeconds(2);
            o.LockWaitTimeout = TimeSpan.FromMinutes(1);
        });
        var clients = Enumerable.Range(0, 4).Select(_ => app.CreateClient()).ToArray();
        foreach (var client in clients)
        {
            (await client.PostAsync("/exclusive/inc", null)).EnsureSuccessStatusCode();
        }

        var responses = await Task.WhenAll(clients.SelectMany(client => Enumerable.Range(0, 25).Select(_ => client.PostAsync("/exclusive/inc", null))));

        Assert.All(responses, r => r.EnsureSuccessStatusCode());
        foreach (var client in clients)
        {
            Assert.Equal("26", await client.GetStringAsync("/read/n"));
        }

        Assert.Equal(0, app.Session.LockQueueSessions);
    }
}
