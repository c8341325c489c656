using System.Net;
using Asm.Testing.Drivers;
using Asm.Testing.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Asm.SessionAdapter.Tests.Failures;

/// <summary>What a request sees when storage fails or hangs: the stock session's semantics, with clear errors.</summary>
public sealed class StorageFailureTests
{
    private ChaosSessionDriver _chaos = null!;

    [Fact]
    public async Task SynchronousLoad_StorageDown_SessionIsUnavailableAndRequestSucceeds()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/async/set", null);
        _chaos.Fail = true;

        var response = await client.GetStringAsync("/sync/read");

        Assert.Equal("available=False value=", response);
    }

    [Fact]
    public async Task LoadAsync_StorageDown_ThrowsSessionStorageExceptionNamingTheCause()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/async/set", null);
        _chaos.Fail = true;

        var response = await client.GetStringAsync("/async/load");

        Assert.StartsWith("SessionStorageException: Failed loading session ", response);
        Assert.Contains("Injected storage failure.", response);
    }

    [Fact]
    public async Task CommitAsync_StorageDown_ThrowsSessionStorageException()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/async/set", null);

        var response = await client.GetStringAsync("/async/commit-while-down");

        Assert.StartsWith("SessionStorageException: Failed committing session ", response);
    }

    [Fact]
    public async Task LoadAsync_StorageHangs_TimesOutAfterIOTimeout()
    {
        await using var app = await StartAsync(o => o.IOTimeout = TimeSpan.FromMilliseconds(300));
        var client = app.CreateClient();
        await client.PostAsync("/async/set", null);
        _chaos.Hang = true;

        var response = await client.GetStringAsync("/async/load");

        Assert.StartsWith("OperationCanceledException: Timed out loading the session (AsmSessionOptions.IOTimeout is 00:00:00.3", response);
    }

    [Fact]
    public async Task StorageBack_RequestsSucceedAgainWithNothingLost()
    {
        await using var app = await StartAsync();
        var client = app.CreateClient();
        await client.PostAsync("/async/set", null);
        _chaos.Fail = true;
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/async/load")).StatusCode);

        _chaos.Fail = false;

        Assert.Equal("available=True value=kept", await client.GetStringAsync("/sync/read"));
    }

    private Task<SessionApp> StartAsync(Action<AsmSessionOptions>? configure = null) =>
        SessionApp.StartAsync(b => b.UseInMemoryDriver(), Map, configure, services: s => _chaos = ChaosSessionDriver.Wrap(s));

    private void Map(WebApplication app)
    {
        app.MapPost("/async/set", (HttpContext c) => c.Session.SetString("v", "kept"));
        app.MapGet("/sync/read", (HttpContext c) => $"available={c.Session.IsAvailable} value={c.Session.GetString("v")}");
        app.MapGet("/async/load", async (HttpContext c) =>
        {
            try
            {
                await c.Session.LoadAsync();
                return "loaded";
            }
            catch (Exception e) when (e is SessionStorageException or OperationCanceledException)
            {
                return $"{e.GetType().Name}: {e.Message}";
            }
        });
        app.MapGet("/async/commit-while-down", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            c.Session.SetString("v", "changed");
            _chaos.Fail = true;
            try
            {
                await c.Session.CommitAsync();
                return "committed";
            }
            catch (SessionStorageException e)
            {
                return $"{e.GetType().Name}: {e.Message}";
            }
            finally
            {
                _chaos.Fail = false;
            }
        });
    }
}
