// The app bench/run.sh starts once per configuration (see docs/benchmarks.md):
//   Asm.Benchmarks.App --provider none|stock-memory|stock-redis|stock-msredis|floor-redis|floor-redis-checked|asm-memory|asm-fs|asm-redis
//                      [--redis HOST:PORT] [--dir PATH] [--lock-mode exclusive|lockonwrite|lockless|readonly] [--port N]
//                      [--load-cancellation true]
// Prints "LISTENING <url>" once it serves requests on loopback (a free port unless --port is given).
using System.Net;
using Asm.Benchmarks.App;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Asm.Caching.Sessions;
using Microsoft.Extensions.DependencyInjection.Extensions;

var builder = WebApplication.CreateSlimBuilder(args);
var settings = BenchSettings.From(builder.Configuration);
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, settings.Port));

// Warning, not Information: with Information on, the stock session reads the cache once more on every commit
// (only to log whether the session is new), which would charge it a round trip it does not make in production.
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Services.AddDataProtection().UseEphemeralDataProtectionProvider();

switch (settings.Provider)
{
    case SessionProvider.StockMemory:
        builder.Services.AddDistributedMemoryCache();
        builder.Services.AddSession();
        break;
    case SessionProvider.StockRedis:
        builder.Services.AddAsmDistributedCache().UseRedisDriver(settings.Redis!);
        builder.Services.AddSession();
        break;
    case SessionProvider.StockMicrosoftRedis:
        builder.Services.AddStackExchangeRedisCache(o => o.Configuration = settings.Redis);
        builder.Services.AddSession();
        break;
    case SessionProvider.FloorRedis:
        builder.Services.AddAsmSession(o => o.DefaultLockMode = settings.DefaultLockMode);
        builder.Services.Replace(ServiceDescriptor.Singleton<ISessionDriver>(new FloorSessionDriver(settings.Redis!)));
        break;
    case SessionProvider.FloorRedisChecked:
        builder.Services.AddAsmSession(o => o.DefaultLockMode = settings.DefaultLockMode);
        builder.Services.Replace(ServiceDescriptor.Singleton<ISessionDriver>(new FloorSessionDriver(settings.Redis!, checkedWrites: true)));
        break;
    case SessionProvider.AsmMemory:
        builder.Services.AddAsmSession(o => o.DefaultLockMode = settings.DefaultLockMode).UseInMemoryDriver();
        break;
    case SessionProvider.AsmFileSystem:
        builder.Services.AddAsmSession(o => o.DefaultLockMode = settings.DefaultLockMode).UseFileSystemDriver(settings.Directory!);
        break;
    case SessionProvider.AsmRedis:
        builder.Services.AddAsmSession(o => o.DefaultLockMode = settings.DefaultLockMode).UseRedisDriver(settings.Redis!);
        break;
}

var app = builder.Build();
if (settings.Provider != SessionProvider.None)
{
    app.UseSession();
    new SessionEndpoints(settings.LoadCancellation).Map(app);
}

// No session: what the same pipeline serves without one.
app.MapGet("/none", () => "none");

// Bytes allocated by the whole process so far: bench/kestrel-allocations.sh reads it before and after a wrk run.
app.MapGet("/allocated", () => GC.GetTotalAllocatedBytes(precise: true).ToString(System.Globalization.CultureInfo.InvariantCulture));

if (settings.Redis is { } redis)
{
    RedisPing.Map(app, redis);
}

await app.StartAsync();
var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
Console.WriteLine($"LISTENING {address} provider={settings.Provider} default-lock-mode={settings.DefaultLockMode}");
await app.WaitForShutdownAsync();
