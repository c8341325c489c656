using System.Text;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;

namespace Asm.SessionAdapter.Tests.EndToEnd;

/// <summary>
/// The same scripts of <see cref="ISession"/> calls, request after request of one browser, on the stock session and on
/// Asm: what each call answers (<c>Keys</c>, <c>TryGetValue</c>, <c>IsAvailable</c>, exceptions), each response's
/// status and whether it sets a cookie must be the same. Requests are separated by <c>|</c>, calls by <c>;</c>.
/// </summary>
public sealed class StockSessionParityTests
{
    public static TheoryData<string> Scripts => new()
    {
        "keys|keys",
        "get a|keys",
        "set a 1|keys",
        "set a 1;remove a|keys",
        "set a 1;remove a;keys|get a",
        "set a 1;clear;keys|keys",
        "set a 1|clear|keys",
        "set a 1|remove a|keys",
        "set a 1|remove b|keys",
        "clear;remove a|keys",
        "set a 1;commit;set b 2;keys|keys",
        "set a 1;commit;commit|keys",
        "load;load;set a 1|keys",
        "set a 1|set a 2;get a;remove a;get a;set a 3|get a;keys",
        "set a 1|available|keys",
        "set a 1;clear;set b 2|keys",
        "set a 1|clear;set b 2|keys",
        "set a 1;set b 2|remove a;keys|keys",
        "commit|keys",
        "set a|keys;get a",
    };

    [Theory]
    [MemberData(nameof(Scripts))]
    public async Task ScriptOfSessionCalls_AnswersAsTheStockSessionDoes(string script)
    {
        var stock = await RunAsync(script, "stock");
        var asm = await RunAsync(script, "asm");

        Assert.Equal(stock, asm);
    }

    private static async Task<string> RunAsync(string script, string store)
    {
        await using var app = await SessionUsedAsAppsDoTests.StartStockOrAsmAsync(store, a => a.MapPost("/run", async (HttpContext c) =>
        {
            var calls = (await new StreamReader(c.Request.Body).ReadToEndAsync()).Split(';', StringSplitOptions.RemoveEmptyEntries);
            var answers = new List<string>();
            foreach (var call in calls)
            {
                try
                {
                    answers.Add(await CallAsync(c.Session, call.Split(' ')));
                }
                catch (Exception ex)
                {
                    answers.Add($"{call} threw {ex.GetType().Name}");
                }
            }

            return string.Join(" ", answers.Where(a => a.Length > 0));
        }));
        using var client = new HttpClient(new CookieJarHandler(app.GetTestServer().CreateHandler())) { BaseAddress = new Uri("http://localhost/") };
        var transcript = new List<string>();
        foreach (var request in script.Split('|'))
        {
            var response = await client.PostAsync("/run", new StringContent(request));
            transcript.Add($"[{(int)response.StatusCode} cookie={response.Headers.Contains("Set-Cookie")}] {await response.Content.ReadAsStringAsync()}");
        }

        return string.Join(" | ", transcript);
    }

    private static async Task<string> CallAsync(ISession session, string[] call)
    {
        switch (call[0])
        {
            case "keys":
                return "keys=" + string.Join(",", session.Keys.Order(StringComparer.Ordinal));
            case "get":
                return $"{call[1]}=" + (session.TryGetValue(call[1], out var value) ? Encoding.UTF8.GetString(value) : "<none>");
            case "set":
                session.Set(call[1], Encoding.UTF8.GetBytes(call.Length > 2 ? call[2] : ""));
                return "";
            case "remove":
                session.Remove(call[1]);
                return "";
            case "clear":
                session.Clear();
                return "";
            case "commit":
                await session.CommitAsync();
                return "";
            case "load":
                await session.LoadAsync();
                return "";
            case "available":
                return $"available={session.IsAvailable}";
            default:
                throw new ArgumentException($"Unknown call {call[0]}.");
        }
    }
}
