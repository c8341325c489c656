using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Asm.Testing.Redis;

/// <summary>
/// A minimal RESP client for test administration (PING, INFO, CLUSTER INFO, writing raw data), independent of the
/// client library under test, so that what it sends is exactly what the tests count. One connection per command.
/// </summary>
internal static class RedisProtocolClient
{
    /// <summary>
    /// Sends one command. Replies: simple string as <see cref="string"/>, bulk string as <see cref="byte"/>[],
    /// integer as <see cref="long"/>, array as <see cref="object"/>[], nil as <see langword="null"/>; an error reply
    /// throws <see cref="RedisErrorReplyException"/>.
    /// </summary>
    public static async Task<object?> ExecuteAsync(int port, object[] args, CancellationToken cancellationToken = default)
    {
        using var client = new TcpClient();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        await client.ConnectAsync("127.0.0.1", port, timeout.Token).ConfigureAwait(false);
        var stream = client.GetStream();
        await stream.WriteAsync(Encode(args), timeout.Token).ConfigureAwait(false);
        var reader = new ReplyReader(stream);
        return await reader.ReadAsync(timeout.Token).ConfigureAwait(false);
    }

    private static byte[] Encode(object[] args)
    {
        using var buffer = new MemoryStream();
        void Write(string text) => buffer.Write(Encoding.UTF8.GetBytes(text));
        Write(string.Create(CultureInfo.InvariantCulture, $"*{args.Length}\r\n"));
        foreach (var arg in args)
        {
            var bytes = arg switch
            {
                byte[] raw => raw,
                string text => Encoding.UTF8.GetBytes(text),
                IFormattable formattable => Encoding.UTF8.GetBytes(formattable.ToString(null, CultureInfo.InvariantCulture)),
                _ => throw new ArgumentException($"Cannot send a {arg?.GetType().Name ?? "null"} to Redis.", nameof(args)),
            };
            Write(string.Create(CultureInfo.InvariantCulture, $"${bytes.Length}\r\n"));
            buffer.Write(bytes);
            Write("\r\n");
        }

        return buffer.ToArray();
    }

    private sealed class ReplyReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;

        public async Task<object?> ReadAsync(CancellationToken cancellationToken)
        {
            var line = await ReadLineAsync(cancellationToken).ConfigureAwait(false);
            var body = line[1..];
            switch (line[0])
            {
                case '+':
                    return body;
                case '-':
                    throw new RedisErrorReplyException(body);
                case ':':
                    return long.Parse(body, CultureInfo.InvariantCulture);
                case '$':
                {
                    var length = int.Parse(body, CultureInfo.InvariantCulture);
                    if (length < 0)
                    {
                        return null;
                    }

                    var bytes = await ReadBytesAsync(length + 2, cancellationToken).ConfigureAwait(false);
                    return bytes[..length];
                }

                case '*':
                {
                    var count = int.Parse(body, CultureInfo.InvariantCulture);
                    if (count < 0)
                    {
                        return null;
                    }

                    var items = new object?[count];
                    for (var i = 0; i < count; i++)
                    {
                        items[i] = await ReadAsync(cancellationToken).ConfigureAwait(false);
                    }

                    return items;
                }

                default:
                    throw new InvalidDataException($"Unexpected RESP reply: {line}");
            }
        }

        private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                var span = _buffer.AsSpan(_start, _end - _start);
                var newline = span.IndexOf("\r\n"u8);
                if (newline >= 0)
                {
                    var line = Encoding.UTF8.GetString(span[..newline]);
                    _start += newline + 2;
                    return line;
                }

                await FillAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        private async Task<byte[]> ReadBytesAsync(int count, CancellationToken cancellationToken)
        {
            var result = new byte[count];
            var copied = 0;
            while (copied < count)
            {
                if (_start == _end)
                {
                    await FillAsync(cancellationToken).ConfigureAwait(false);
                }

                var take = Math.Min(count - copied, _end - _start);
                _buffer.AsSpan(_start, take).CopyTo(result.AsSpan(copied));
                _start += take;
                copied += take;
            }

            return result;
        }

        private async Task FillAsync(CancellationToken cancellationToken)
        {
            if (_start > 0)
            {
                _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                throw new InvalidDataException("A RESP line is longer than the test client's buffer.");
            }

            var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException("Redis closed the connection.");
            }

            _end += read;
        }
    }
}
