using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Asm.Caching.Tests.Drivers.Redis;

/// <summary>Keeps what a driver logs, to check event ids and that no key leaks into a message.</summary>
internal sealed class RecordingLogger<T> : ILogger<T>
{
    public ConcurrentQueue<(EventId Id, LogLevel Level, string Message, Exception? Exception)> Entries { get; } = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        Entries.Enqueue((eventId, logLevel, formatter(state, exception), exception));
    }
}
