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
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Asm.SessionAdapter.Tests.Diagnostics;

/// <summary>
/// The observability promise (docs/observability.md): no log line (message, structured state, scope or exception), metric
/// tag, activity tag or exception message names a session key, a session id or a user id, over every path that logs,
/// counts, traces or throws about one session. Nor does any carry what a client chose (its User-Agent, a user id with
/// line breaks and a terminal escape that would forge a log line), and every metric tag is one of Asm's own names, so
/// that no input can add a metric series.
/// </summary>
public sealed class TelemetryCarriesNoKeyTests
{
    private const string UserId = "ada-user-4711\r\n[CRIT] forged line\u001b[0m";
    private const string AttackerAgent = "Attacker-4711/1.0";
    private const string MovedAgent = "Phone-4711/2.0";

    [Fact]
    public async Task EverySessionPath_LogsCountsTracesAndThrowsWithoutAKeyAnIdOrAUserId()
    {
        var logs = new FakeLogCollector();
        var telemetry = new ConcurrentQueue<string>();
        var metricTags = new ConcurrentQueue<string>();
        using var meters = ListenToAsmMeters(metricTags);
        using var activities = ListenToAsmActivities(telemetry);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await SessionApp.StartAsync(
            b => new InMemoryDriverFixture().Use(b, "telemetry"),
            web => Map(web, entered, release),
            o => o.LockWaitTimeout = TimeSpan.FromMilliseconds(200),
            services: s => s.AddSingleton<ILoggerProvider>(new FakeLoggerProvider(logs)));
        var keys = new List<string>();
        var cookies = new List<string>();
        var browser = app.CreateClient(out var jar);
        void Remember()
        {
            keys.Add(StockApp.KeyOf(app.Services, jar));
            cookies.Add(jar.Cookies.GetAllCookies().Single().Value);
        }

        (await browser.PostAsync("/set", null)).EnsureSuccessStatusCode();
        Remember();
        var beforeLogin = ClientWithCookies(app, jar);
        (await browser.PostAsync("/regenerate", null)).EnsureSuccessStatusCode();
        Remember();
        var answers = new List<string>
        {
            await beforeLogin.Client.GetStringAsync("/get"),                                      // zombie served
            await AnswerAsync(beforeLogin.Client.PostAsync("/regenerate-or-say-why", null)),
        };
        var planted = ClientWithCookies(app, beforeLogin.Jar);
        planted.Client.DefaultRequestHeaders.UserAgent.ParseAdd(AttackerAgent);
        await planted.Client.GetStringAsync("/get");                                               // ZombieProfileMismatch
        var moved = ClientWithCookies(app, jar);
        moved.Client.DefaultRequestHeaders.UserAgent.ParseAdd(MovedAgent);
        await moved.Client.GetStringAsync("/get");                                                 // profile changed
        (await browser.PostAsync("/bind", null)).EnsureSuccessStatusCode();
        Remember();
        answers.Add(await browser.GetStringAsync("/write-on-read-only-or-say-why"));

        var holder = browser.PostAsync("/hold", null);
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(60));
        answers.Add(await AnswerAsync(ClientWithCookies(app, jar).Client.PostAsync("/wait-or-say-why", null)));
        release.SetResult();
        (await holder.WaitAsync(TimeSpan.FromSeconds(60))).EnsureSuccessStatusCode();

        Assert.Equal(1, await app.Services.GetRequiredService<IAsmSessionManager>().DestroyUserSessionsAsync(UserId));
        await ClientWithCookies(app, jar).Client.GetStringAsync("/get");                          // Destroyed
        var stranger = app.CreateClient();
        var unknown = SessionKey.New().Value;
        keys.Add(unknown);
        stranger.DefaultRequestHeaders.Add("Cookie", $"{AsmSessionOptions.DefaultCookieName}={StockApp.CookieFor(app.Services, unknown)}");
        await stranger.GetStringAsync("/get");                                              // Unknown

        // Each path ran: its message is there (by event id), and the exceptions are the ones meant.
        var records = logs.GetSnapshot();
        Assert.All(new[] { 1, 2, 6, 7, 8, 9, 10, 20, 21 }, id => Assert.Contains(records, r => r.Id.Id == id));
        Assert.Contains("(zombie) key", answers[1], StringComparison.Ordinal);
        Assert.Contains(nameof(InvalidOperationException), answers[2], StringComparison.Ordinal);
        Assert.Contains(nameof(SessionLockTimeoutException), answers[3], StringComparison.Ordinal);

        var secrets = keys.Concat(keys.Select(k => k[..SessionKey.IdLength])).Concat(cookies)
            .Concat([UserId, "forged line", AttackerAgent, MovedAgent]).ToList();
        var said = records.SelectMany(r => new[] { r.Message, r.Exception?.ToString() }
                .Concat(r.StructuredState?.Select(p => p.Value) ?? [])
                .Concat(r.Scopes.Select(s => s?.ToString())))
            .Concat(answers)
            .Concat(telemetry)
            .Concat(metricTags)
            .Where(s => s is not null)
            .ToList();
        Assert.NotEmpty(telemetry);
        Assert.NotEmpty(metricTags);
        Assert.All(metricTags, tag => Assert.Matches("^[a-z_]+$|^[A-Z][A-Za-z]+$", tag));
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(said, s => s!.Contains(secret, StringComparison.Ordinal));
        }
    }

    private static void Map(WebApplication app, TaskCompletionSource entered, TaskCompletionSource release)
    {
        app.MapPost("/set", (HttpContext c) => c.Session.SetString("a", "b"));
        app.MapGet("/get", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString("a") ?? "-";
        });
        app.MapPost("/regenerate", (HttpContext c) => c.Session.RegenerateIdAsync());
        app.MapPost("/bind", (HttpContext c) => c.Session.BindUserAsync(UserId));
        // Typed lambdas: one that takes only the HttpContext and returns a Task<string> would bind as a RequestDelegate, its answer dropped.
        app.MapPost("/regenerate-or-say-why", Task<string> (HttpContext c) => SayWhyAsync(() => c.Session.RegenerateIdAsync()));
        app.MapGet("/write-on-read-only-or-say-why", Task<string> (HttpContext c) => SayWhyAsync(async () =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("a", "c");
        })).WithSessionLock(SessionLockMode.ReadOnly);
        app.MapPost("/hold", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            entered.TrySetResult();
            await release.Task;
        });
        app.MapPost("/wait-or-say-why", Task<string> (HttpContext c) => SayWhyAsync(() => c.Session.LoadAsync()));
    }

    private static async Task<string> AnswerAsync(Task<HttpResponseMessage> sending)
    {
        var response = await sending;
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {body}");
        return body;
    }

    private static async Task<string> SayWhyAsync(Func<Task> act)
    {
        try
        {
            await act();
            return "done";
        }
        catch (Exception ex)
        {
            return ex.ToString();
        }
    }

    private static (HttpClient Client, CookieJarHandler Jar) ClientWithCookies(SessionApp app, CookieJarHandler from)
    {
        var client = app.CreateClient(out var jar);
        jar.Cookies.Add(from.Cookies.GetAllCookies());
        return (client, jar);
    }

    /// <summary>Every tag value of every Asm instrument's measurements, from now on.</summary>
    private static MeterListener ListenToAsmMeters(ConcurrentQueue<string> tags)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == AsmSessionMetricNames.MeterName)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, measured, _) => Add(tags, measured));
        listener.SetMeasurementEventCallback<double>((_, _, measured, _) => Add(tags, measured));
        listener.Start();
        return listener;
    }

    /// <summary>Every tag value and status description of every Asm activity, from now on.</summary>
    private static ActivityListener ListenToAsmActivities(ConcurrentQueue<string> tags)
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == AsmSessionMetricNames.MeterName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                foreach (var (_, value) in activity.TagObjects)
                {
                    tags.Enqueue(value?.ToString() ?? "");
                }

                tags.Enqueue(activity.StatusDescription ?? "");
            },
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }

    private static void Add(ConcurrentQueue<string> tags, ReadOnlySpan<KeyValuePair<string, object?>> measured)
    {
        foreach (var (_, value) in measured)
        {
            tags.Enqueue(value?.ToString() ?? "");
        }
    }
}
