using System.Net;
using System.Text;
using Asm.Caching.Sessions;
using Asm.SessionAdapter;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Asm.Benchmarks;

/// <summary>
/// One request through the stock <see cref="SessionMiddleware"/> with a session cookie, as the load test sends it,
/// with the stock <c>DistributedSession</c> (over the memory cache) or Asm's session (in-memory driver) behind it: the
/// cookie is unprotected, the session loaded, a value read (or a counter incremented) and the session committed.
/// Storage is in memory on both sides, so time and allocations are those of the session code itself.
/// </summary>
/// <remarks>"Context only" is the same request with no session middleware: what every row pays regardless.</remarks>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class SessionPipelineBenchmarks
{
    private const string Read = "Read";
    private const string Write = "Read-modify-write";

    private Pipeline _stock = null!;
    private Pipeline _asm = null!;
    private Endpoint _exclusive = null!;
    private Endpoint _readOnly = null!;
    private Endpoint _lockless = null!;

    [GlobalSetup]
    public void Setup()
    {
        _exclusive = EndpointWith(SessionLockMode.Exclusive);
        _readOnly = EndpointWith(SessionLockMode.ReadOnly);
        _lockless = EndpointWith(SessionLockMode.Lockless);

        var stock = new ServiceCollection();
        stock.AddDistributedMemoryCache();
        stock.AddSession();
        _stock = new Pipeline(stock, SeedStock);

        var asm = new ServiceCollection();
        asm.AddAsmSession().UseInMemoryDriver();
        _asm = new Pipeline(asm, SeedAsm);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stock.Dispose();
        _asm.Dispose();
    }

    [Benchmark(Baseline = true), BenchmarkCategory(Read)]
    public Task Stock_Read() => _stock.ReadAsync(_exclusive);

    [Benchmark, BenchmarkCategory(Read)]
    public Task Asm_ReadOnly_Read() => _asm.ReadAsync(_readOnly);

    [Benchmark, BenchmarkCategory(Read)]
    public Task Asm_Exclusive_Read() => _asm.ReadAsync(_exclusive);

    [Benchmark, BenchmarkCategory(Read)]
    public Task ContextOnly_Read() => _stock.WithoutSessionAsync(_exclusive);

    [Benchmark(Baseline = true), BenchmarkCategory(Write)]
    public Task Stock_Write() => _stock.WriteAsync(_exclusive);

    [Benchmark, BenchmarkCategory(Write)]
    public Task Asm_Exclusive_Write() => _asm.WriteAsync(_exclusive);

    [Benchmark, BenchmarkCategory(Write)]
    public Task Asm_Lockless_Write() => _asm.WriteAsync(_lockless);

    [Benchmark, BenchmarkCategory(Write)]
    public Task ContextOnly_Write() => _stock.WithoutSessionAsync(_exclusive);

    private static Endpoint EndpointWith(SessionLockMode mode) =>
        new(null, new EndpointMetadataCollection(new SessionLockAttribute(mode)), mode.ToString());

    /// <summary>Stores a stock session under a new key (the stock key is a GUID string) and returns the key.</summary>
    private static string SeedStock(IServiceProvider services)
    {
        var key = Guid.NewGuid().ToString();
        var session = services.GetRequiredService<ISessionStore>().Create(key, TimeSpan.FromMinutes(20), TimeSpan.FromMinutes(1), () => true, isNewSessionKey: true);
        session.LoadAsync().GetAwaiter().GetResult();
        foreach (var (name, value) in SeedData.Values())
        {
            session.Set(name, value!);
        }

        session.CommitAsync().GetAwaiter().GetResult();
        return key;
    }

    /// <summary>Stores an Asm session through its driver (with the client profile of the benchmark's requests).</summary>
    private static string SeedAsm(IServiceProvider services)
    {
        var key = SessionKey.New();
        var options = services.GetRequiredService<IOptions<AsmSessionOptions>>().Value;
        var driver = services.GetRequiredService<ISessionDriver>();
        var status = driver.CommitAsync(SeedData.CreateRequest(key, TimeProvider.System.GetUtcNow(), options.IdleTimeout), default)
            .AsTask().GetAwaiter().GetResult();
        return status == SessionCommitStatus.Committed ? key.Value : throw new InvalidOperationException($"Seeding failed: {status}.");
    }

    /// <summary>The session middleware of one provider, with a seeded session and its cookie.</summary>
    private sealed class Pipeline : IDisposable
    {
        private readonly ServiceProvider _services;
        private readonly RequestDelegate _read;
        private readonly RequestDelegate _write;
        private readonly string _cookie;

        public Pipeline(IServiceCollection services, Func<IServiceProvider, string> seed)
        {
            services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
            services.AddDataProtection().UseEphemeralDataProtectionProvider();
            _services = services.BuildServiceProvider();
            _read = Build(ReadHandlerAsync);
            _write = Build(WriteHandlerAsync);

            // The cookie the middleware would have written: the key, protected as the stock middleware protects it.
            var key = seed(_services);
            var protector = _services.GetRequiredService<IDataProtectionProvider>().CreateProtector(nameof(SessionMiddleware));
            var value = Convert.ToBase64String(protector.Protect(Encoding.UTF8.GetBytes(key))).TrimEnd('=');
            _cookie = $"{_services.GetRequiredService<IOptions<SessionOptions>>().Value.Cookie.Name}={Uri.EscapeDataString(value)}";
        }

        public Task ReadAsync(Endpoint endpoint) => _read(NewContext(endpoint));

        public Task WriteAsync(Endpoint endpoint) => _write(NewContext(endpoint));

        public Task WithoutSessionAsync(Endpoint endpoint)
        {
            NewContext(endpoint);
            return Task.CompletedTask;
        }

        public void Dispose() => _services.Dispose();

        private static async Task ReadHandlerAsync(HttpContext context)
        {
            await context.Session.LoadAsync();
            if (context.Session.GetString("user") is null)
            {
                throw new InvalidOperationException("The seeded session was not found.");
            }
        }

        private static async Task WriteHandlerAsync(HttpContext context)
        {
            await context.Session.LoadAsync();
            context.Session.SetInt32("counter", (context.Session.GetInt32("counter") ?? 0) + 1);
        }

        /// <summary>
        /// The session middleware before <paramref name="handler"/>, behind what the provider's startup filters put first,
        /// as a host builds an app's pipeline.
        /// </summary>
        private RequestDelegate Build(RequestDelegate handler)
        {
            var session = new SessionMiddleware(
                handler,
                _services.GetRequiredService<ILoggerFactory>(),
                _services.GetRequiredService<IDataProtectionProvider>(),
                _services.GetRequiredService<ISessionStore>(),
                _services.GetRequiredService<IOptions<SessionOptions>>());
            Action<IApplicationBuilder> configure = app => app.Run(session.Invoke);
            foreach (var filter in _services.GetServices<IStartupFilter>().Reverse())
            {
                configure = filter.Configure(configure);
            }

            var builder = new ApplicationBuilder(_services);
            configure(builder);
            return builder.Build();
        }

        private DefaultHttpContext NewContext(Endpoint endpoint)
        {
            var context = new DefaultHttpContext { RequestServices = _services };
            context.Request.Headers.Cookie = _cookie;
            context.Request.Headers.UserAgent = SeedData.UserAgent;
            context.Connection.RemoteIpAddress = IPAddress.Loopback;
            context.SetEndpoint(endpoint);
            return context;
        }
    }
}
