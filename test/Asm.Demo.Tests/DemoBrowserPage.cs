using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Asm.Demo.Tests;

/// <summary>
/// The demo page as a person uses it: each action clicks its button, waits for its card to finish and checks what
/// the page shows. Waits are on page state, never fixed sleeps.
/// </summary>
public sealed class DemoBrowserPage : IAsyncDisposable
{
    private readonly IBrowserContext _context;

    private DemoBrowserPage(IBrowserContext context, IPage page)
    {
        _context = context;
        Page = page;
    }

    public IPage Page { get; }

    /// <summary>The short hash of the session id the page shows.</summary>
    public Task<string> SessionIdAsync() => Page.Locator("#session-id").InnerTextAsync();

    public static async Task<DemoBrowserPage> OpenAsync(IBrowserContext context, Uri address)
    {
        var page = await context.NewPageAsync();
        await page.GotoAsync(address.ToString());
        await Expect(page.Locator("body[data-ready=true]")).ToBeAttachedAsync();
        await Expect(page.Locator("#session-created")).Not.ToHaveTextAsync("not stored yet");
        return new DemoBrowserPage(context, page);
    }

    /// <summary>"Fire 50 parallel increments": the Exclusive counter reaches 50. Returns the Lockless total.</summary>
    public async Task<int> FireIncrementsAsync()
    {
        await RunAsync("increments");
        await Expect(Page.Locator("#result-exclusive")).ToHaveTextAsync("50");
        var lockless = int.Parse(await Page.Locator("#result-lockless").InnerTextAsync(), CultureInfo.InvariantCulture);
        Assert.InRange(lockless, 1, 50);
        await ExpectValueAsync("exclusive", "50");
        return lockless;
    }

    /// <summary>"Log in": the slow request's old key is answered as a zombie and both writes are kept.</summary>
    public async Task LogInAsync()
    {
        var id = await SessionIdAsync();
        await RunAsync("login");
        await Expect(Page.Locator("#login-regenerated")).ToHaveClassAsync("yes");
        await Expect(Page.Locator("#login-zombie")).ToHaveClassAsync("yes");
        await Expect(Page.Locator("#login-values")).ToHaveClassAsync("yes");
        await Expect(Page.Locator("#event-log li[data-kind=zombie-key]").First).ToContainTextAsync("served the live session");
        await ExpectValueAsync("user", new Regex("^ada-[0-9a-f]{8}$"));
        await ExpectValueAsync("cart", "3 books");
        Assert.Equal(id, await SessionIdAsync());
    }

    /// <summary>"Hold the lock for 3 s": the read-only endpoint keeps answering, fast, while an Exclusive read waits.</summary>
    public async Task HoldTheLockAsync()
    {
        await RunAsync("hold");
        // Only answers given while the hold ran are counted: a read-only request that waited for the lock has none.
        var answers = int.Parse(await Page.Locator("#result-readonly-answers").InnerTextAsync(), CultureInfo.InvariantCulture);
        Assert.True(answers >= 3, $"Only {answers} read-only answers arrived while the lock was held for 3 s.");
        Assert.Equal("true", await Page.Locator("#result-hold").GetAttributeAsync("data-exclusive-waited"));
    }

    /// <summary>"Simulate another browser": OnProfileChanged is raised and logged.</summary>
    public async Task SimulateAnotherBrowserAsync()
    {
        await RunAsync("other-client");
        await Expect(Page.Locator("#profile-changed")).ToHaveClassAsync("yes");
        await Expect(Page.Locator("#event-log li[data-kind=profile-changed]").First).ToContainTextAsync("another-device");
    }

    /// <summary>
    /// "Your devices" (after "Log in"): another device signs in as the same user, both are listed, "log out other
    /// devices" ends the other one, and its end appears in the event log.
    /// </summary>
    public async Task YourDevicesAsync()
    {
        await RunAsync("devices");
        await Expect(Page.Locator("#devices-listed")).ToHaveClassAsync("yes");
        await Expect(Page.Locator("#devices-others-ended")).ToHaveClassAsync("yes");
        await Expect(Page.Locator("#result-devices table.devices tbody tr")).Not.ToHaveCountAsync(0);
        await Expect(Page.Locator("#event-log li[data-kind=session-ended]").First).ToContainTextAsync("ended: Destroyed");
    }

    /// <summary>"Destroy": the page ends up on a new session, with none of the old values.</summary>
    public async Task DestroyAsync()
    {
        var id = await SessionIdAsync();
        await RunAsync("destroy");
        await Expect(Page.Locator("#destroy-new-session")).ToHaveClassAsync("yes");
        await Expect(Page.Locator("#session-id")).Not.ToHaveTextAsync(id);
        await Expect(Page.Locator("#session-values tr")).ToHaveCountAsync(1);
        await Expect(Page.Locator("#session-values tr[data-name=created]")).ToHaveCountAsync(1);
    }

    public async ValueTask DisposeAsync() => await _context.CloseAsync();

    private async Task RunAsync(string action)
    {
        var card = Page.Locator($"#card-{action}");
        await Page.Locator($"#btn-{action}").ClickAsync();
        await Page.Locator($"#card-{action}:is([data-status=done], [data-status=failed])").WaitForAsync(new() { Timeout = 15_000 });
        Assert.True(await card.GetAttributeAsync("data-status") == "done",
            $"The {action} action failed: {await Page.Locator($"#result-{action}").InnerTextAsync()}");
    }

    private Task ExpectValueAsync(string name, string value) =>
        Expect(Page.Locator($"#session-values tr[data-name={name}] td").Nth(1)).ToHaveTextAsync(value);

    private Task ExpectValueAsync(string name, Regex value) =>
        Expect(Page.Locator($"#session-values tr[data-name={name}] td").Nth(1)).ToHaveTextAsync(value);
}
