using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Asm.Caching.Sessions;
using Asm.SessionAdapter.Diagnostics;
using Asm.SessionAdapter.Tests.Import;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Asm.SessionAdapter.Tests.Diagnostics;

/// <summary>Every instrument and both activity kinds, by name, unit and attributes, after the OpenTelemetry conventions.</summary>
public sealed class AsmSessionMetricsTests
{
    private static readonly string[] AllowedTags =
    [
        AsmSessionMetricNames.InvalidReason, AsmSessionMetricNames.LockOutcome, AsmSessionMetricNames.ProfileOutcome,
        AsmSessionMetricNames.EndedReason,
    ];

    [Fact]
    public async Task Created_CountsTheFirstCommitOfEachNewSession()
    {
        await using var app = await StartAsync();
        using var created = app.Services.CollectCounter(AsmSessionMetricNames.Created);
        var client = app.CreateClient();

        await client.PostAsync("/set", null);
        await client.PostAsync("/set", null);

        AssertCounted(created, 1, "{session}");
    }

    [Fact]
    public async Task Invalid_IsTaggedByNamespacedReasonNeverByKey()
    {
        await using var app = await StartAsync();
        using var invalid = app.Services.CollectCounter(AsmSessionMetricNames.Invalid);
        var stranger = app.CreateClient();
        stranger.DefaultRequestHeaders.Add("Cookie", ".AspNetCore.Session=garbage");

        await stranger.PostAsync("/set", null);

        var measurement = AssertCounted(invalid, 1, "{request}");
        Assert.Equal("Malformed", measurement.Tags[AsmSessionMetricNames.InvalidReason]);
    }

    [Fact]
    public async Task ZombieAccessedAndRegenerated_AreCounted()
    {
        await using var app = await StartAsync();
        using var zombie = app.Services.CollectCounter(AsmSessionMetricNames.ZombieAccessed);
        using var regenerated = app.Services.CollectCounter(AsmSessionMetricNames.Regenerated);
        var client = app.CreateClient(out var jar);
        await client.PostAsync("/set", null);
        var old = jar.Cookies.GetAllCookies().Single().Value;
        await client.PostAsync("/regenerate", null);
        var stale = app.CreateClient();
        stale.DefaultRequestHeaders.Add("Cookie", $".AspNetCore.Session={old}");

        await stale.GetStringAsync("/get");

        AssertCounted(regenerated, 1, "{session}");
        AssertCounted(zombie, 1, "{request}");
    }

    [Fact]
    public async Task UserBoundDestroyedAndEnded_AreCounted_EndedTaggedByReason()
    {
        await using var app = await StartAsync();
        using var bound = app.Services.CollectCounter(AsmSessionMetricNames.UserBound);
        using var destroyed = app.Services.CollectCounter(AsmSessionMetricNames.Destroyed);
        using var ended = app.Services.CollectCounter(AsmSessionMetricNames.Ended);
        var client = app.CreateClient();

        await client.PostAsync("/bind", null);
        await client.PostAsync("/destroy", null);

        AssertCounted(bound, 1, "{session}");
        AssertCounted(destroyed, 1, "{session}");
        Assert.Equal("Destroyed", AssertCounted(ended, 1, "{session}").Tags[AsmSessionMetricNames.EndedReason]);
    }

    [Fact]
    public async Task ProfileChanged_IsTaggedByNamespacedOutcome()
    {
        await using var app = await StartAsync();
        using var changed = app.Services.CollectCounter(AsmSessionMetricNames.ProfileChanged);
        var client = app.CreateClient();
        client.DefaultRequestHeaders.UserAgent.ParseAdd("First/1.0");
        await client.PostAsync("/set", null);
        client.DefaultRequestHeaders.UserAgent.Clear();
        client.DefaultRequestHeaders.UserAgent.ParseAdd("Second/1.0");

        await client.GetStringAsync("/get");

        Assert.Equal("accepted", AssertCounted(changed, 1, "{request}").Tags[AsmSessionMetricNames.ProfileOutcome]);
    }

    [Fact]
    public void LockWaitDuration_IsInSeconds_AndLockLostIsCounted()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        var metrics = new AsmSessionMetrics(meters);
        using var wait = new MetricCollector<double>(meters, AsmSessionMetricNames.MeterName, AsmSessionMetricNames.LockWaitDuration);
        using var lost = new MetricCollector<long>(meters, AsmSessionMetricNames.MeterName, AsmSessionMetricNames.LockLost);

        metrics.LockWaited(TimeSpan.FromMilliseconds(250), acquired: true);
        metrics.LockWaited(TimeSpan.FromSeconds(10), acquired: false);
        metrics.LockLost();

        Assert.Equal("s", wait.Instrument!.Unit);
        Assert.Equal([0.25, 10.0], wait.GetMeasurementSnapshot().Select(m => m.Value));
        Assert.Equal(["acquired", "timeout"], wait.GetMeasurementSnapshot().Select(m => m.Tags[AsmSessionMetricNames.LockOutcome]));
        AssertCounted(lost, 1, "{commit}");
    }

    [Fact]
    public async Task LoadAndCommitActivities_CarryTheirOutcome_AndRefusalsAreErrors()
    {
        var activities = new ConcurrentQueue<Activity>();
        using var source = new ActivitySource("Asm.Tests." + Guid.NewGuid().ToString("N"));
        using var listener = Record(source, activities);
        await using var app = await StartAsync();
        var client = app.CreateClient();

        // This test's requests run under a trace of its own (other tests' sessions run in parallel), passed as a W3C
        // traceparent header that the server's request activity continues.
        ActivityTraceId trace;
        using (var root = source.StartActivity("test")!)
        {
            trace = root.TraceId;
            client.DefaultRequestHeaders.Add("traceparent", root.Id);
            await client.PostAsync("/set", null);
            await client.PostAsync("/set", null);
            await client.PostAsync("/destroy-then-write", null);
        }

        var mine = activities.Where(a => a.TraceId == trace).ToList();
        var loads = mine.Where(a => a.OperationName == AsmSessionMetricNames.LoadActivity).Select(a => a.GetTagItem(AsmSessionMetricNames.Outcome)).ToList();
        var commits = mine.Where(a => a.OperationName == AsmSessionMetricNames.CommitActivity).ToList();
        Assert.Contains("new", loads);
        Assert.Contains("found", loads);
        Assert.Contains(commits, c => (string?)c.GetTagItem(AsmSessionMetricNames.Outcome) == "created" && c.Status == ActivityStatusCode.Unset);
        Assert.Contains(commits, c => (string?)c.GetTagItem(AsmSessionMetricNames.Outcome) == "committed" && c.Status == ActivityStatusCode.Unset);
        Assert.Contains(commits, c => (string?)c.GetTagItem(AsmSessionMetricNames.Outcome) == "not_found" && c.Status == ActivityStatusCode.Error);
    }

    [Fact]
    public async Task LoadAndCommitActivities_CarryEveryDocumentedOutcome_AndErrorsAreMarked()
    {
        var activities = new ConcurrentQueue<Activity>();
        using var source = new ActivitySource("Asm.Tests." + Guid.NewGuid().ToString("N"));
        using var listener = Record(source, activities);
        using var files = new FileSystemDriverFixture();
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        ChaosSessionDriver? chaos = null;
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await SessionApp.StartAsync(
            b => files.Use(b, "traces"),
            web =>
            {
                web.MapPost("/set", (HttpContext c) => c.Session.SetString("a", "b"));
                web.MapGet("/read", async (HttpContext c) =>
                {
                    await c.Session.LoadAsync();
                    return c.Session.GetString("a") ?? "-";
                });
                web.MapGet("/peek", async (HttpContext c) =>
                {
                    await c.Session.LoadAsync();
                    return c.Session.GetString("a") ?? "-";
                }).WithSessionLock(SessionLockMode.ReadOnly);
                web.MapPost("/regenerate", (HttpContext c) => c.Session.RegenerateIdAsync());
                web.MapPost("/destroy", (HttpContext c) => c.Session.DestroyAsync());
                web.MapPost("/hold-then-set", async (HttpContext c) =>
                {
                    await c.Session.LoadAsync();
                    held.SetResult();
                    await release.Task;
                    c.Session.SetString("a", "late");
                });
            },
            time: time,
            services: s => chaos = ChaosSessionDriver.Wrap(s));

        ActivityTraceId trace;
        using (var root = source.StartActivity("test")!)
        {
            trace = root.TraceId;
            HttpClient Client(out CookieJarHandler jar)
            {
                var client = app.CreateClient(out jar);
                client.DefaultRequestHeaders.Add("traceparent", root.Id);
                return client;
            }

            HttpClient WithCookie(string cookie)
            {
                var client = Client(out _);
                client.DefaultRequestHeaders.Add("Cookie", $"{AsmSessionOptions.DefaultCookieName}={cookie}");
                return client;
            }

            var user = Client(out var jar);
            await user.PostAsync("/set", null);                                             // load new, commit created
            await user.PostAsync("/set", null);                                             // commit committed
            await user.GetStringAsync("/peek");                                            // load found, commit unchanged
            await user.GetStringAsync("/read");                                            // commit released
            var oldCookie = jar.Cookies.GetAllCookies().Single().Value;
            await user.PostAsync("/regenerate", null);
            await WithCookie(oldCookie).GetStringAsync("/peek");                           // zombie
            await WithCookie("garbage").GetStringAsync("/peek");                           // malformed
            await WithCookie(StockApp.CookieFor(app.Services, SessionKey.New().Value)).GetStringAsync("/peek");  // unknown

            var doomed = Client(out var doomedJar);
            await doomed.PostAsync("/set", null);
            var destroyedCookie = doomedJar.Cookies.GetAllCookies().Single().Value;
            await doomed.PostAsync("/destroy", null);
            await WithCookie(destroyedCookie).GetStringAsync("/peek");                     // destroyed

            // The holder's renewals never arrive; its lease runs out and the storage grants the lock to another.
            chaos!.DropRenewals = true;
            var holding = user.PostAsync("/hold-then-set", null);
            await held.Task.WaitAsync(TimeSpan.FromSeconds(60));
            time.Advance(TimeSpan.FromMinutes(1));
            var key = SessionKey.TryParse(StockApp.KeyOf(app.Services, jar), out var parsed) ? parsed : throw new InvalidOperationException();
            var taken = await chaos.AtRest.LoadAsync(
                new SessionLoadRequest { Key = key, Now = time.GetUtcNow(), IdleTimeout = TimeSpan.FromMinutes(20), Lease = SessionLease.Create(TimeSpan.FromMinutes(1)) },
                CancellationToken.None);
            Assert.NotNull(taken.Lease);
            release.SetResult();
            await holding;                                                                  // commit lock_lost
            chaos.DropRenewals = false;

            await WithCookie(oldCookie).GetStringAsync("/peek");                           // zombie_expired (30 s window)
            time.Advance(TimeSpan.FromMinutes(21));
            await WithCookie(jar.Cookies.GetAllCookies().Single().Value).GetStringAsync("/peek");  // expired

            chaos.Fail = true;
            await Assert.ThrowsAnyAsync<Exception>(() => WithCookie(jar.Cookies.GetAllCookies().Single().Value).GetStringAsync("/read"));  // error
            await Client(out _).PostAsync("/set", null);                                    // commit error: the creation failed
            chaos.Fail = false;

            var corrupt = Client(out var corruptJar);
            await corrupt.PostAsync("/set", null);
            await files.CorruptSessionAsync("traces", StockApp.KeyOf(app.Services, corruptJar)[..SessionKey.IdLength]);
            await corrupt.GetStringAsync("/peek");                                          // corrupt
        }

        var mine = activities.Where(a => a.TraceId == trace).ToList();
        var loads = mine.Where(a => a.OperationName == AsmSessionMetricNames.LoadActivity).Select(a => (Outcome(a), a.Status)).ToList();
        var commits = mine.Where(a => a.OperationName == AsmSessionMetricNames.CommitActivity).Select(a => (Outcome(a), a.Status)).ToList();
        foreach (var outcome in new[] { "new", "malformed", "found", "zombie", "unknown", "expired", "destroyed", "zombie_expired" })
        {
            Assert.Contains((outcome, ActivityStatusCode.Unset), loads);
        }

        Assert.Contains(("corrupt", ActivityStatusCode.Error), loads);
        Assert.Contains(("error", ActivityStatusCode.Error), loads);
        Assert.Contains(mine, a => a.OperationName == AsmSessionMetricNames.LoadActivity
            && (string?)a.GetTagItem("error.type") == typeof(SessionStorageException).FullName);
        foreach (var outcome in new[] { "created", "committed", "released", "unchanged" })
        {
            Assert.Contains((outcome, ActivityStatusCode.Unset), commits);
        }

        Assert.Contains(("lock_lost", ActivityStatusCode.Error), commits);
        Assert.Contains(("error", ActivityStatusCode.Error), commits);
    }

    /// <summary>
    /// Records the Asm activities and the server's request activities, which continue the W3C trace of a test's own
    /// <paramref name="source"/> (other tests' sessions run in parallel).
    /// </summary>
    private static ActivityListener Record(ActivitySource source, ConcurrentQueue<Activity> activities)
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is AsmSessionMetricNames.MeterName or "Microsoft.AspNetCore" || s == source,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activities.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }

    private static string? Outcome(Activity activity) => (string?)activity.GetTagItem(AsmSessionMetricNames.Outcome);

    private static CollectedMeasurement<long> AssertCounted(MetricCollector<long> collector, long total, string unit)
    {
        Assert.Equal(unit, collector.Instrument!.Unit);
        var measurements = collector.GetMeasurementSnapshot();
        Assert.Equal(total, measurements.Sum(m => m.Value));
        Assert.All(measurements, m => Assert.All(m.Tags, t => Assert.Contains(t.Key, AllowedTags)));
        return measurements[^1];
    }

    private static Task<SessionApp> StartAsync() => SessionApp.StartAsync(
        b => new InMemoryDriverFixture().Use(b, "metrics"),
        app =>
        {
            app.MapPost("/set", (HttpContext c) => c.Session.SetString("a", "b"));
            app.MapGet("/get", (HttpContext c) => c.Session.GetString("a") ?? "");
            app.MapPost("/regenerate", (HttpContext c) => c.Session.RegenerateIdAsync());
            app.MapPost("/bind", (HttpContext c) => c.Session.BindUserAsync("ada"));
            app.MapPost("/destroy", (HttpContext c) => c.Session.DestroyAsync());
            app.MapPost("/destroy-then-write", async (HttpContext c, IAsmSessionManager manager) =>
            {
                // Ended from elsewhere while this request runs: its commit is refused.
                await c.Session.LoadAsync();
                await manager.DestroySessionAsync(c.Session.Id);
                c.Session.SetString("a", "late");
            });
        });
}
