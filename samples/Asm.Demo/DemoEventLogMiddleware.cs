namespace Asm.Demo;

/// <summary>Files the session events a request raised in the <see cref="DemoEventLog"/> once its endpoint has run.</summary>
internal sealed class DemoEventLogMiddleware(RequestDelegate next, DemoEventLog log)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        finally
        {
            log.Flush(context);
        }
    }
}
