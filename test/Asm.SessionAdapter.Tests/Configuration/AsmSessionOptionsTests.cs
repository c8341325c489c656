using System.Text;
using Asm.SessionAdapter.Users;
using Asm.Testing.Cleanup;
using Asm.Testing.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Asm.SessionAdapter.Tests.Configuration;

public sealed class AsmSessionOptionsTests
{
    [Fact]
    public void Defaults_AreTheDocumentedOnes()
    {
        var options = new AsmSessionOptions();

        Assert.Equal(TimeSpan.FromMinutes(20), options.IdleTimeout);
        Assert.Equal(TimeSpan.FromHours(8), options.AbsoluteTimeout);
        Assert.Equal(TimeSpan.FromMinutes(1), options.IOTimeout);
        Assert.Equal(SessionLockMode.Exclusive, options.DefaultLockMode);
        Assert.Equal(TimeSpan.FromSeconds(30), options.LockLease);
        Assert.Equal(TimeSpan.FromSeconds(10), options.LockWaitTimeout);
        Assert.Equal(LockWaitFailure.Throw, options.LockWaitFailure);
        Assert.Equal(TimeSpan.FromSeconds(30), options.ZombieLifetime);
        Assert.Equal(4 * 1024 * 1024, options.MaxSessionSize);
        Assert.False(options.EncryptAtRest);
        Assert.True(options.Cookie.HttpOnly);
        Assert.Equal(Microsoft.AspNetCore.Http.SameSiteMode.Lax, options.Cookie.SameSite);
        Assert.Equal(Microsoft.AspNetCore.Http.CookieSecurePolicy.SameAsRequest, options.Cookie.SecurePolicy);
        Assert.Equal("/", options.Cookie.Path);
    }

    [Theory]
    [InlineData(nameof(AsmSessionOptions.IdleTimeout), "AsmSessionOptions.IdleTimeout must be positive")]
    [InlineData(nameof(AsmSessionOptions.LockLease), "AsmSessionOptions.LockLease is 00:00:00.1000000: a lease under 1 second")]
    [InlineData(nameof(AsmSessionOptions.MaxProfiles), "AsmSessionOptions.MaxProfiles must be between 1 and 64")]
    [InlineData(nameof(AsmSessionOptions.UseHostPrefix), "AsmSessionOptions.UseHostPrefix needs a host-only cookie")]
    [InlineData(nameof(AsmSessionOptions.DefaultLockMode), "AsmSessionOptions.DefaultLockMode is 7, which is not a SessionLockMode")]
    [InlineData(nameof(AsmSessionOptions.LockWaitFailure), "AsmSessionOptions.LockWaitFailure is 5, which is not a LockWaitFailure")]
    [InlineData("IdleTimeout=Max", "AsmSessionOptions.IdleTimeout is 10675199.02:48:05.4775807: it must be at most 36500 days")]
    [InlineData("AbsoluteTimeout=Max", "AsmSessionOptions.AbsoluteTimeout is 10675199.02:48:05.4775807: it must be at most 36500 days, so that expiry times stay representable (null turns")]
    [InlineData("ZombieLifetime=Max", "AsmSessionOptions.ZombieLifetime is 10675199.02:48:05.4775807: it must be at most 36500 days")]
    [InlineData("LockLease=Max", "AsmSessionOptions.LockLease is 10675199.02:48:05.4775807: it must be at most 1 day, since a lease is renewed")]
    [InlineData("IOTimeout=Max", "AsmSessionOptions.IOTimeout is 10675199.02:48:05.4775807: it must be at most 1 day, since it bounds one storage call")]
    public async Task InvalidOption_FailsAtStartWithAMessageNamingIt(string option, string message)
    {
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            _ => { },
            o =>
            {
                switch (option)
                {
                    case nameof(AsmSessionOptions.IdleTimeout):
                        o.IdleTimeout = TimeSpan.Zero;
                        break;
                    case nameof(AsmSessionOptions.LockLease):
                        o.LockLease = TimeSpan.FromMilliseconds(100);
                        break;
                    case nameof(AsmSessionOptions.MaxProfiles):
                        o.MaxProfiles = 0;
                        break;
                    case nameof(AsmSessionOptions.DefaultLockMode):
                        o.DefaultLockMode = (SessionLockMode)7;
                        break;
                    case nameof(AsmSessionOptions.LockWaitFailure):
                        o.LockWaitFailure = (LockWaitFailure)5;
                        break;
                    case nameof(AsmSessionOptions.UseHostPrefix):
                        o.UseHostPrefix = true;
                        o.Cookie.Domain = "example.org";
                        break;

                    // TimeSpan.MaxValue meant as "never" would fail every request that stores a session, after its answer.
                    case "IdleTimeout=Max":
                        o.IdleTimeout = TimeSpan.MaxValue;
                        break;
                    case "AbsoluteTimeout=Max":
                        o.AbsoluteTimeout = TimeSpan.MaxValue;
                        break;
                    case "ZombieLifetime=Max":
                        o.ZombieLifetime = TimeSpan.MaxValue;
                        break;
                    case "LockLease=Max":
                        o.LockLease = TimeSpan.MaxValue;
                        break;
                    case "IOTimeout=Max":
                        o.IOTimeout = TimeSpan.MaxValue;
                        break;
                }
            }));

        Assert.Contains(message, failure.Message);
    }

    [Fact]
    public async Task FileSystemDriverWithoutDirectory_FailsAtStart()
    {
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => SessionApp.StartAsync(
            b => b.UseFileSystemDriver(o => o.Directory = ""), _ => { }));

        Assert.Contains("FileSystemDriverOptions.Directory", failure.Message);
    }
}

public sealed class AsmSessionRegistrationTests
{
    [Fact]
    public void ProviderWithMigrateFrom_DisposedSynchronously_DisposesThePreviousDriverWithoutThrowing()
    {
        // A tool or a unit test of the app that uses the session manager from a provider it disposes with `using`.
        var root = TestDirectories.Create("asm-migrate-dispose-");
        try
        {
            var services = new ServiceCollection();
            services.AddLogging();
            services.AddAsmSession().UseInMemoryDriver().MigrateFrom(previous => previous.UseFileSystemDriver(root));
            var provider = services.BuildServiceProvider();
            Assert.NotNull(provider.GetRequiredService<IAsmSessionManager>());

            provider.Dispose();
        }
        finally
        {
            TestDirectories.Delete(root);
        }
    }

    [Fact]
    public async Task MigrateFromTheInMemoryDriver_FailsAtStartSayingThereIsNothingToMove()
    {
        // The previous driver is built in a container of its own: an in-memory one there is a new, empty store (the old
        // app's sessions died with its process), so the migration would silently move nothing.
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => SessionApp.StartAsync(
            b => b.UseInMemoryDriver().MigrateFrom(previous => previous.UseInMemoryDriver()),
            _ => { }));

        Assert.StartsWith("MigrateFrom(previous => previous.UseInMemoryDriver()) names an in-memory store", failure.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AddAsmSession_WithAddSessionBeforeOrAfter_AsmStoreWins(bool stockFirst)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        if (stockFirst)
        {
            services.AddSession();
        }

        services.AddAsmSession();
        if (!stockFirst)
        {
            services.AddSession();
        }

        var stores = services.Where(d => d.ServiceType == typeof(Microsoft.AspNetCore.Session.ISessionStore)).ToList();
        Assert.Equal("AsmSessionStore", Assert.Single(stores).ImplementationType?.Name);
    }
}

public sealed class AsmSessionBesideAddSessionTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AddSessionWithItsOwnCookie_BeforeOrAfter_AsmsCookieOptionsStillWin(bool stockFirst)
    {
        // An app that keeps its old AddSession line (its cookie name and policy) beside Asm's host-prefixed cookie.
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        void AddStock() => builder.Services.AddSession(o => (o.Cookie.Name, o.Cookie.SecurePolicy) = ("legacy", CookieSecurePolicy.None));
        if (stockFirst)
        {
            AddStock();
        }

        builder.Services.AddAsmSession(o => (o.UseHostPrefix, o.Cookie.Name) = (true, "app"));
        if (!stockFirst)
        {
            AddStock();
        }

        await using var app = builder.Build();
        app.UseSession();
        app.MapPost("/set", (HttpContext c) => c.Session.SetString("a", "b"));
        await app.StartAsync();
        using var client = app.GetTestServer().CreateClient();
        client.BaseAddress = new Uri("https://localhost/");

        var cookie = Assert.Single((await client.PostAsync("/set", null)).Headers.GetValues("Set-Cookie"));

        Assert.StartsWith("__Host-app=", cookie, StringComparison.Ordinal);
        Assert.Contains("secure", cookie, StringComparison.OrdinalIgnoreCase);
        await app.StopAsync();
    }
}

public sealed class AsmSessionConfigurationTests
{
    [Fact]
    public async Task OptionsBoundFromJsonConfiguration_ReachTheSessionItsCookieAndItsStoredTimes()
    {
        var json = """
            { "Session": { "IdleTimeout": "00:05:00", "AbsoluteTimeout": null, "DefaultLockMode": "Lockless",
              "Cookie": { "Name": "app.sid", "SameSite": "Strict" } } }
            """;
        var configuration = new ConfigurationBuilder()
            .AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            a => a.MapPost("/set", (HttpContext c) =>
            {
                c.Session.SetString("a", "b");
                return c.Session.Id + "|" + ((IAsmSession)c.Session).LockMode;
            }),
            services: s => s.Configure<AsmSessionOptions>(configuration.GetSection("Session")));

        var response = await app.CreateClient().PostAsync("/set", null);
        var answer = (await response.Content.ReadAsStringAsync()).Split('|');

        var cookie = Assert.Single(response.Headers.GetValues("Set-Cookie"));
        Assert.StartsWith("app.sid=", cookie, StringComparison.Ordinal);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("Lockless", answer[1]);
        var options = app.Services.GetRequiredService<IOptions<AsmSessionOptions>>().Value;
        Assert.Equal((TimeSpan.FromMinutes(5), (TimeSpan?)null), (options.IdleTimeout, options.AbsoluteTimeout));
        var info = await app.Services.GetRequiredService<IAsmSessionManager>().GetSessionAsync(answer[0]);
        Assert.Null(info!.AbsoluteExpiresAt);
    }

    [Theory]
    [InlineData("DefaultLockMode", "7", "AsmSessionOptions.DefaultLockMode is 7")]
    [InlineData("LockLease", "00:00:00.5", "AsmSessionOptions.LockLease is 00:00:00.5000000")]
    [InlineData("ZombieLifetime", "-00:00:01", "AsmSessionOptions.ZombieLifetime must not be negative")]
    public async Task InvalidOptionBoundFromConfiguration_FailsAtStartNamingIt(string key, string value, string message)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Session:" + key] = value }).Build();

        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => SessionApp.StartAsync(
            b => b.UseInMemoryDriver(), _ => { }, services: s => s.Configure<AsmSessionOptions>(configuration.GetSection("Session"))));

        Assert.Contains(message, failure.Message);
    }

    [Fact]
    public async Task AddAsmSessionTwiceWithPostConfigure_AppliesEveryConfigurationInOrder_AndRegistersItsServicesOnce()
    {
        await using var app = await SessionApp.StartAsync(
            b => b.UseInMemoryDriver(),
            _ => { },
            o => o.IdleTimeout = TimeSpan.FromMinutes(1),
            services: s =>
            {
                s.PostConfigure<AsmSessionOptions>(o => o.Cookie.Name = "late.sid");
                s.AddAsmSession(o => (o.IdleTimeout, o.MaxProfiles) = (o.IdleTimeout * 2, 3));
            });

        var options = app.Services.GetRequiredService<IOptions<AsmSessionOptions>>().Value;
        Assert.Equal((TimeSpan.FromMinutes(2), 3, "late.sid"), (options.IdleTimeout, options.MaxProfiles, options.Cookie.Name));
        Assert.Equal("late.sid", app.Services.GetRequiredService<IOptions<SessionOptions>>().Value.Cookie.Name);
        Assert.Single(app.Services.GetServices<IHostedService>(), h => h is SessionEndSweeper);
        Assert.Single(app.Services.GetServices<IValidateOptions<AsmSessionOptions>>(), v => v is AsmSessionOptionsValidator);
    }
}
