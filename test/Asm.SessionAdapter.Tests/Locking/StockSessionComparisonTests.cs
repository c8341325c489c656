using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Asm.SessionAdapter.Tests.Locking;

/// <summary>The lost-update test run against the stock session, for comparison; its loss is printed, not asserted.</summary>
public sealed class StockSessionComparisonTests(ITestOutputHelper output)
{
    [Fact]
    public async Task HundredConcurrentIncrements_StockSessionLosesUpdatesAsmKeepsThem()
    {
        var stock = await CountAsync(services => services.AddDistributedMemoryCache().AddSession());
        var asm = await CountAsync(services => services.AddAsmSession());

        output.WriteLine($"100 concurrent increments of one counter: stock AddSession() kept {stock}, Asm (Exclusive) kept {asm}.");
        Assert.Equal(100, asm);
        Assert.InRange(stock, 1, 100);
    }

    private static async Task<int> CountAsync(Action<IServiceCollection> register)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        register(builder.Services);
        await using var app = builder.Build();
        app.UseSession();
        app.MapPost("/inc", async (HttpContext c) =>
        {
            await c.Session.LoadAsync();
            var n = (c.Session.GetInt32("n") ?? 0) + 1;
            await Task.Delay(1);
            c.Session.SetInt32("n", n);
        });
        app.MapGet("/n", (HttpContext c) => c.Session.GetInt32("n") ?? 0);
        await app.StartAsync();
        using var client = new HttpClient(new CookieJarHandler(app.GetTestServer().CreateHandler())) { BaseAddress = new Uri("http://localhost/") };
        await client.PostAsync("/inc", null);
        await Task.WhenAll(Enumerable.Range(0, 99).Select(_ => client.PostAsync("/inc", null)));
        return int.Parse(await client.GetStringAsync("/n"), System.Globalization.CultureInfo.InvariantCulture);
    }
}
