using System.Diagnostics;
using System.Net;
using Asm.Testing.Cleanup;
using Asm.Testing.Drivers;
using Asm.Testing.Http;

namespace Asm.SessionAdapter.Tests.Locking;

/// <summary>Locks across separate app processes on one storage, as servers behind a load balancer.</summary>
public abstract class CrossProcessLockingTests<TDriver>(TDriver driver) : IClassFixture<TDriver>, IDisposable
    where TDriver : class, IDriverFixture
{
    private readonly string _scope = Guid.NewGuid().ToString("N");
    private readonly string _keys = TestDirectories.Create("asm-keys-");

    [Fact]
    public async Task TwoProcesses_HundredConcurrentIncrementsEach_CountTwoHundred()
    {
        // A long lease: this test is about two processes taking turns, not about leases running out on a starved machine.
        await using var first = await StartChildAsync(leaseSeconds: 30);
        await using var second = await StartChildAsync(leaseSeconds: 30);
        using var client = new HttpClient();
        var cookie = await EstablishAsync(client, first);

        await Task.WhenAll(Enumerable.Range(0, 200).Select(i => SendAsync(client, i % 2 == 0 ? first : second, HttpMethod.Post, "/inc", cookie)));

        var total = await SendAsync(client, second, HttpMethod.Get, "/read", cookie);
        Assert.Equal("201", await total.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task KilledLockHolder_BlocksTheSessionForAtMostOneLease()
    {
        await using var holder = await StartChildAsync();
        await using var next = await StartChildAsync();
        using var client = new HttpClient();
        var cookie = await EstablishAsync(client, holder);

        // The holder takes the lock, says so, and dies without committing or unlocking.
        var hold = await SendAsync(client, holder, HttpMethod.Post, "/hold?ms=600000", cookie, HttpCompletionOption.ResponseHeadersRead);
        using (var reader = new StreamReader(await hold.Content.ReadAsStreamAsync()))
        {
            Assert.Equal("holding", await reader.ReadLineAsync());
        }

        holder.Kill();
        var waited = Stopwatch.StartNew();
        var after = await SendAsync(client, next, HttpMethod.Post, "/inc", cookie);
        waited.Stop();

        // The lease, not LockWaitTimeout (10 s, after which the request would fail), freed the lock; the margin is for
        // a loaded machine, where starting a request alone takes seconds.
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Equal("2", await after.Content.ReadAsStringAsync());
        Assert.InRange(waited.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(LeaseSeconds + 6));
    }

    [Fact]
    public async Task KilledInTheMiddleOfCommits_NoTornSessionNoAcknowledgedIncrementLostLockFreeWithinOneLease()
    {
        await using var victim = await StartChildAsync();
        await using var survivor = await StartChildAsync();
        using var client = new HttpClient();
        var established = await client.PostAsync(new Uri(victim.Address, "/inc-committed"), null);
        established.EnsureSuccessStatusCode();
        var cookie = established.Headers.GetValues("Set-Cookie").Single().Split(';')[0];

        // 100 increments in flight, each answered only once stored; the process dies after the first 20 answers.
        var acknowledged = new System.Collections.Concurrent.ConcurrentBag<int>();
        var twenty = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var increments = Enumerable.Range(0, 100).Select(async _ =>
        {
            try
            {
                var response = await SendAsync(client, victim, HttpMethod.Post, "/inc-committed", cookie);
                acknowledged.Add(int.Parse(await response.Content.ReadAsStringAsync(), System.Globalization.CultureInfo.InvariantCulture));
                if (acknowledged.Count >= 20)
                {
                    twenty.TrySetResult();
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or System.Net.Sockets.SocketException)
            {
                // Cut off by the kill.
            }
        }).ToList();
        await twenty.Task.WaitAsync(TimeSpan.FromSeconds(60));
        victim.Kill();
        await Task.WhenAll(increments);

        var waited = Stopwatch.StartNew();
        var next = await SendAsync(client, survivor, HttpMethod.Post, "/inc-committed", cookie);
        waited.Stop();
        var after = int.Parse(await next.Content.ReadAsStringAsync(), System.Globalization.CultureInfo.InvariantCulture);

        // The record reads whole (a torn one would be corrupt: a new session, counting from 1), holds every
        // acknowledged increment, and the lock the dead process may have held ended with its lease (well before
        // LockWaitTimeout; the bound is generous for a loaded machine, where starting a request alone takes seconds).
        Assert.InRange(after, acknowledged.Max() + 1, 1 + 100 + 1);
        Assert.InRange(waited.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(LeaseSeconds + 8));
    }

    public void Dispose()
    {
        TestDirectories.Delete(_keys);
        GC.SuppressFinalize(this);
    }

    private const int LeaseSeconds = 2;

    private Task<ChildApp> StartChildAsync(int leaseSeconds = LeaseSeconds) =>
        ChildApp.StartAsync(["--keys", _keys, "--lease", leaseSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), .. driver.ChildArguments(_scope)]);

    private static async Task<string> EstablishAsync(HttpClient client, ChildApp app)
    {
        var response = await client.PostAsync(new Uri(app.Address, "/inc"), null);
        response.EnsureSuccessStatusCode();
        return response.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
    }

    private static async Task<HttpResponseMessage> SendAsync(
        HttpClient client, ChildApp app, HttpMethod method, string path, string cookie,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        using var request = new HttpRequestMessage(method, new Uri(app.Address, path));
        request.Headers.Add("Cookie", cookie);
        var response = await client.SendAsync(request, completion);
        response.EnsureSuccessStatusCode();
        return response;
    }
}
