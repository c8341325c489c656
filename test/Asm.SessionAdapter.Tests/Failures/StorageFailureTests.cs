using System.Net;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Asm.SessionAdapter.Tests.Failures;

/// <summary>
/// What a request sees when storage fails or hangs, through endpoints that catch nothing: the stock session's
/// semantics (a failed <c>LoadAsync</c> fails the request, a synchronous read finds the session unavailable, a failed
/// commit at the end of the request is logged), with clear errors and nothing written.
/// </summary>
public sealed class StorageFailureTests
{
    private readonly FakeLogCollector _logs = new();
    private ChaosSessionDriver _chaos = null!;
    private Exception? _thrown;

    [Fact]
    public async Task SynchronousRead_StorageDown_SessionUnavailableValueAbsentAndFailureLogged()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await SetAsync(client, "kept");
        _chaos.Fail = true;

        var response = await client.GetStringAsync("/sync/read");

        Assert.Equal("available=False value=", response);
        Assert.Contains(_logs.GetSnapshot(), r => r.Message.StartsWith("Loading session ", StringComparison.Ordinal) && $"{r.Exception}".Contains("Injected storage failure.", StringComparison.Ordinal));
    }

    [Fact]
    public async Task LoadAsync_StorageDown_RequestFailsWithSessionStorageExceptionNamingTheCause()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await SetAsync(client, "kept");
        _chaos.Fail = true;

        var response = await client.GetAsync("/async/read");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var thrown = Assert.IsType<SessionStorageException>(_thrown);
        Assert.StartsWith("Failed loading session ", thrown.Message, StringComparison.Ordinal);
        Assert.Contains("Injected storage failure.", thrown.Message, StringComparison.Ordinal);
        Assert.IsType<IOException>(thrown.InnerException);
    }

    [Fact]
    public async Task CommitAsync_StorageRefusesTheWrite_ThrowsWritesNothingAndFreesTheLock()
    {
        await using var app = await StartAsync(o => o.LockWaitTimeout = TimeSpan.FromSeconds(5));
        var client = app.CreateClient();
        await SetAsync(client, "kept");

        var response = await client.PostAsync("/async/set-then-fail?value=changed", null);

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var thrown = Assert.IsType<SessionStorageException>(_thrown);
        Assert.StartsWith("Failed committing session ", thrown.Message, StringComparison.Ordinal);
        Assert.Contains("no space left on device", thrown.Message, StringComparison.Ordinal);

        // Exclusive again: a lock left behind would make this wait out LockWaitTimeout and fail.
        Assert.Equal("kept", await client.GetStringAsync("/async/read"));
    }

    [Fact]
    public async Task CommitAsync_StorageRefusesANewSession_TheAppAnswersAndNoCookieNamesTheSessionThatWasNotStored()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient(out var jar);

        // The app commits before answering, catches the failure and answers: the session was not stored.
        var response = await client.PostAsync("/async/create-or-report?value=v", null);

        Assert.Equal("not stored", await response.Content.ReadAsStringAsync());
        // A cookie here would name a session nothing stores: the next request would be told it is Unknown.
        Assert.False(response.Headers.Contains("Set-Cookie"));
        Assert.Empty(jar.Cookies.GetAllCookies());
        Assert.Equal("stored", await (await client.PostAsync("/async/create-or-report?value=v", null)).Content.ReadAsStringAsync());
        Assert.Equal("v", await client.GetStringAsync("/async/read"));
    }

    [Fact]
    public async Task LoadAsync_StorageHangs_RequestFailsAfterIOTimeout()
    {
        await using var app = await StartAsync(o => o.IOTimeout = TimeSpan.FromMilliseconds(300));
        var client = app.CreateClient();
        await SetAsync(client, "kept");
        _chaos.Hang = true;

        var response = await client.GetAsync("/async/read");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var thrown = Assert.IsType<OperationCanceledException>(_thrown);
        Assert.StartsWith("Timed out loading the session (AsmSessionOptions.IOTimeout is 00:00:00.3", thrown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StorageBack_AfterFailedRequests_ValueWrittenBeforeTheOutageIsReadAgain()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await SetAsync(client, "kept");
        _chaos.Fail = true;
        Assert.Equal(HttpStatusCode.InternalServerError, (await client.GetAsync("/async/read")).StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, (await client.PostAsync("/async/set?value=lost", null)).StatusCode);

        _chaos.Fail = false;

        Assert.Equal("kept", await client.GetStringAsync("/async/read"));
    }

    private static async Task SetAsync(HttpClient client, string value) =>
        (await client.PostAsync($"/async/set?value={value}", null)).EnsureSuccessStatusCode();

    private Task<SessionApp> StartAsync(Action<AsmSessionOptions>? configure = null) =>
        SessionApp.StartAsync(b => b.UseInMemoryDriver(), Map, configure, services: s =>
        {
            _chaos = ChaosSessionDriver.Wrap(s);
            s.AddLogging(l => l.AddProvider(new FakeLoggerProvider(_logs)));
        });

    private void Map(WebApplication app)
    {
        app.AnswerExceptionsWith500(ex => _thrown = ex);
        app.MapGet("/sync/read", (HttpContext c) => $"available={c.Session.IsAvailable} value={c.Session.GetString("v")}");
        app.MapGet("/async/read", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            return c.Session.GetString("v");
        });
        app.MapPost("/async/set", async (HttpContext c, string value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("v", value);
        });
        var failFirstCreation = true;
        app.MapPost("/async/create-or-report", async (HttpContext c, string value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("v", value);
            _chaos.FailCommits = failFirstCreation;
            failFirstCreation = false;
            try
            {
                await c.Session.CommitAsync();
                return "stored";
            }
            catch (SessionStorageException)
            {
                return "not stored";
            }
            finally
            {
                _chaos.FailCommits = false;
            }
        });
        app.MapPost("/async/set-then-fail", async (HttpContext c, string value) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("v", value);
            _chaos.FailCommits = true;
            try
            {
                await c.Session.CommitAsync();
            }
            finally
            {
                _chaos.FailCommits = false;
            }
        });
    }
}
