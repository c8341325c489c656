using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Asm.Testing.Http;

/// <summary>
/// What Kestrel does with an exception an endpoint lets out, for apps on <c>TestServer</c> (which would hand the
/// exception to the client instead): the response is a 500, and the exception is handed to the test.
/// </summary>
public static class ServerErrors
{
    /// <summary>Answers 500 to every request whose endpoint throws, after giving the exception to <paramref name="record"/>.</summary>
    public static void AnswerExceptionsWith500(this WebApplication app, Action<Exception> record)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(record);
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (Exception ex)
            {
                record(ex);
                context.Response.StatusCode = StatusCodes.Status500InternalServerError;
            }
        });
    }
}
