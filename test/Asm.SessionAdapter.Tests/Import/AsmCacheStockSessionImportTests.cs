using Asm.Testing.Cleanup;
using Microsoft.Extensions.DependencyInjection;

namespace Asm.SessionAdapter.Tests.Import;

/// <summary>
/// The stock session over Asm's own <c>IDistributedCache</c> (<c>AddAsmDistributedCache()</c>) on the filesystem, and
/// after the swap Asm's sessions in the same directory.
/// </summary>
public sealed class AsmCacheStockSessionImportTests : StockSessionImportTests, IDisposable
{
    private readonly string _directory = TestDirectories.Create("asm-import-");

    protected override void AddStockCache(IServiceCollection services) => services.AddAsmDistributedCache().UseFileSystemDriver(_directory);

    protected override void UseAsmDriver(IAsmSessionBuilder builder) => builder.UseFileSystemDriver(_directory);

    [Fact]
    public async Task StockSession_IsImportedEncrypted_WhenEncryptAtRestIsOn()
    {
        await using var stock = await StartStockAsync();
        var stockClient = stock.CreateClient(out var stockJar);
        await stockClient.PostAsync("/set?name=user&value=alice-in-plain-text", null);

        await using var asm = await StartAsmAsync(stock, encrypt: true);

        Assert.Equal("alice-in-plain-text", await ClientWithCookiesOf(asm, stockJar, out _).GetStringAsync("/get?name=user"));
        foreach (var file in Directory.EnumerateFiles(_directory, "*", SearchOption.AllDirectories))
        {
            Assert.DoesNotContain("alice-in-plain-text", System.Text.Encoding.UTF8.GetString(await File.ReadAllBytesAsync(file)), StringComparison.Ordinal);
        }
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
