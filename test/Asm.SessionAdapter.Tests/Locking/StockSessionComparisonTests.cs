using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Locking;

/// <summary>
/// The lost update of the stock session, made certain instead of likely, beside the same handler on Asm. Every
/// request arrives before any of them loads; on the stock session every one also reads before any writes, so all
/// but one increment are lost; on Asm (Exclusive) they run one at a time and all are kept.
/// </summary>
public sealed class StockSessionComparisonTests
{
    private const int Requests = 20;

    [Fact]
    public async Task StockSession_ParallelIncrementsAllReadBeforeAnyWrites_KeepsOnlyOne()
    {
        var run = await RunAsync(services => services.AddDistributedMemoryCache().AddSession(), readsMeetBeforeWriting: true);

        Assert.Equal(1 + 1, run.Count);
        Assert.Equal(Requests, run.MostAtOnce);
    }

    [Fact]
    public async Task AsmSession_ParallelIncrementsAllInFlightAtOnce_RunOneAtATimeAndKeepAll()
    {
        var run = await RunAsync(services => services.AddAsmSession(), readsMeetBeforeWriting: false);

        Assert.Equal(1 + Requests, run.Count);
        Assert.Equal(1, run.MostAtOnce);
    }

    /// <summary>
    /// One increment to create the session, then <see cref="Requests"/> in parallel. Returns the final count and the
    /// most requests that were between their load and their write at the same moment.
    /// </summary>
    private static async Task<(int Count, int MostAtOnce)> RunAsync(Action<IServiceCollection> register, bool readsMeetBeforeWriting)
    {
        var arrived = new Meeting(Requests);
        var loaded = new Meeting(Requests);
        var inside = 0;
        var mostAtOnce = 0;
        var measuring = false;

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        register(builder.Services);
        await using var app = builder.Build();
        app.UseSession();
        app.MapPost("/inc", async (HttpContext c) =>
        {
            if (Volatile.Read(ref measuring))
            {
                await arrived.ArriveAsync();
            }

            await c.Session.LoadAsync();
            var now = Interlocked.Increment(ref inside);
            InterlockedMax(ref mostAtOnce, now);
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            if (readsMeetBeforeWriting && Volatile.Read(ref measuring))
            {
                await loaded.ArriveAsync();
            }
            else
            {
                await Task.Yield();
            }

            c.Session.SetInt32("n", n);
            Interlocked.Decrement(ref inside);
        });
        app.MapGet("/n", (HttpContext c) => c.Session.GetInt32("n") ?? 0);
        await app.StartAsync();
        using var client = new HttpClient(new CookieJarHandler(app.GetTestServer().CreateHandler())) { BaseAddress = new Uri("http://localhost/") };
        (await client.PostAsync("/inc", null)).EnsureSuccessStatusCode();
        Volatile.Write(ref measuring, true);
        var responses = await Task.WhenAll(Enumerable.Range(0, Requests).Select(_ => client.PostAsync("/inc", null)));
        Assert.All(responses, r => r.EnsureSuccessStatusCode());
        Volatile.Write(ref measuring, false);
        var count = int.Parse(await client.GetStringAsync("/n"), System.Globalization.CultureInfo.InvariantCulture);
        return (count, Volatile.Read(ref mostAtOnce));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) is var seen && seen != current)
        {
            current = seen;
        }
    }

    /// <summary>Lets callers through once <c>count</c> of them have arrived.</summary>
    private sealed class Meeting(int count)
    {
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _arrived;

        public Task ArriveAsync()
        {
            if (Interlocked.Increment(ref _arrived) == count)
            {
                _all.SetResult();
            }

            return _all.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
    }
}
