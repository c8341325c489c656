// The Asm demo: one page that shows, in a browser, what Asm gives over the stock ASP.NET Core session.
//
//   dotnet run --project samples/Asm.Demo                              sessions as files in .asm-demo-sessions
//   dotnet run --project samples/Asm.Demo -- --redis 127.0.0.1:6379    sessions in Redis (or ASM_DEMO_REDIS)
//   dotnet run --project samples/Asm.Demo -- --memory                  sessions in this process's memory
//
// Options: --port <n> (default 5080, 0 picks a free one), --urls <urls>, --sessions <directory>.
// Only Asm's public API is used: AddAsmSession, a driver, the stock UseSession() and HttpContext.Session.
using Asm.Demo;

// A switch without a value, which the configuration's command-line reader would pair with the next argument.
const string MemorySwitch = "--memory";
var inMemory = args.Contains(MemorySwitch);
var builder = WebApplication.CreateBuilder(args.Where(arg => arg != MemorySwitch).ToArray());
builder.Logging.AddFilter("Microsoft", LogLevel.Warning);

var storage = DemoStorage.FromConfiguration(builder.Configuration, builder.Environment.ContentRootPath, inMemory);
if (string.IsNullOrEmpty(builder.Configuration["urls"]))
{
    builder.WebHost.UseUrls($"http://127.0.0.1:{builder.Configuration["port"] ?? "5080"}");
}

builder.Services.AddSingleton(storage);
builder.Services.AddSingleton<DemoEventLog>();
builder.Services.AddSingleton<DemoLockHolders>();
builder.Services.AddSingleton<DemoLogIns>();
var sessions = builder.Services.AddAsmSession(options =>
{
    // The default profile is the client's IP address and User-Agent. Browsers do not let a page change its
    // User-Agent, so the demo adds the X-Demo-Client header as a stand-in for another device.
    options.ProfileProvider = DemoProfiles.Of;
    options.Events = DemoEventLog.CreateEvents();
});
storage.Apply(sessions);

var app = builder.Build();
app.UseSession();
app.MapDemoPage();
app.MapDemoApi();

await app.StartAsync();
foreach (var address in app.Urls)
{
    Console.WriteLine($"Asm demo listening on {address}");
}

Console.WriteLine($"Sessions: {storage.Description}. Press Ctrl+C to stop.");
await app.WaitForShutdownAsync();
