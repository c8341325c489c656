// Usage: Asm.TestApp --keys DIR --driver filesystem --directory DIR [--durable true] [--lease SECONDS]
//        Asm.TestApp --keys DIR --driver redis --configuration HOST:PORT[,...] --instance PREFIX [--lease SECONDS]
// Apps given the same --keys directory read each other's session cookies, as servers behind one load balancer do.
// Prints "LISTENING <url>" once it serves requests on a free loopback port.
using Asm.SessionAdapter;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

var builder = WebApplication.CreateSlimBuilder(args);
builder.WebHost.UseUrls("http://127.0.0.1:0");
builder.Logging.ClearProviders();
var config = builder.Configuration;
builder.Services.AddDataProtection().SetApplicationName("asm-tests").PersistKeysToFileSystem(new DirectoryInfo(config["keys"]!));
var sessions = builder.Services.AddAsmSession(o => o.LockLease = TimeSpan.FromSeconds(config.GetValue("lease", 2)));
switch (config["driver"])
{
    case "filesystem":
        sessions.UseFileSystemDriver(o =>
        {
            o.Directory = config["directory"]!;
            o.Durable = config.GetValue("durable", false);
        });
        break;
    case "redis":
        sessions.UseRedisDriver(o =>
        {
            o.Configuration = config["configuration"]!;
            o.InstanceName = config["instance"] ?? "";
        });
        break;
    default:
        throw new ArgumentException("--driver must be filesystem or redis.");
}

var app = builder.Build();
app.UseSession();

// The StackExchange.Redis this process runs on (the test line's: 2.x, or 3.x for Asm.TestApp.Redis3).
app.MapGet("/redis-client", () => typeof(StackExchange.Redis.ConnectionMultiplexer).Assembly.GetName().Version!.ToString());

// Read-modify-write of one counter: lost updates show here unless the session is locked.
app.MapPost("/inc", async (HttpContext context) =>
{
    await context.Session.LoadAsync();
    var value = (context.Session.GetInt32("n") ?? 0) + 1;
    await Task.Yield();
    context.Session.SetInt32("n", value);
    return value;
});

// As /inc, but answers only once the increment is stored: an acknowledged increment must never be lost.
app.MapPost("/inc-committed", async (HttpContext context) =>
{
    await context.Session.LoadAsync();
    var value = (context.Session.GetInt32("n") ?? 0) + 1;
    context.Session.SetInt32("n", value);
    await context.Session.CommitAsync();
    return value;
});

// Takes the lock and tells the caller so; then hangs until the process is killed or the wait ends.
app.MapPost("/hold", async (HttpContext context, int ms) =>
{
    await context.Session.LoadAsync();
    context.Session.SetString("held", "yes");
    await context.Response.WriteAsync("holding\n");
    await context.Response.Body.FlushAsync();
    await Task.Delay(ms);
});

// Binds the session to a user: a user index and the session's end check are written beside the session.
app.MapPost("/login", async (HttpContext context, string user) =>
{
    await context.Session.LoadAsync();
    await context.Session.BindUserAsync(user);
    return user;
});

app.MapGet("/read", (HttpContext context) => context.Session.GetInt32("n") ?? 0).WithSessionLock(SessionLockMode.ReadOnly);

await app.StartAsync();
var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
Console.WriteLine($"LISTENING {address}");
await app.WaitForShutdownAsync();
