namespace Asm.Demo;

/// <summary>Serves the demo's one page, embedded in the assembly so that it runs from any directory.</summary>
internal static class DemoPage
{
    private static readonly Lazy<byte[]> Html = new(() =>
    {
        using var stream = typeof(DemoPage).Assembly.GetManifestResourceStream("Asm.Demo.index.html")
            ?? throw new InvalidOperationException("The page Asm.Demo.index.html is not embedded in the demo.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    public static void MapDemoPage(this IEndpointRouteBuilder app) =>
        app.MapGet("/", () => Results.Bytes(Html.Value, "text/html; charset=utf-8"));
}
