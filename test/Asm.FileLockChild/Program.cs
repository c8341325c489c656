using Asm.Caching.Sessions;
using Microsoft.Extensions.DependencyInjection;

// Usage: Asm.FileLockChild <directory> <session id> <secret> <increments>
//
// Opens the filesystem driver on <directory>, warms up with one lockless load, prints "ready" and waits for a line on
// standard input, so that the test starts several children at once. Then, <increments> times: loads the session with
// a lease (waiting while another holder has it), holds the lease for a moment, and commits the counter plus one with
// the release. Prints "busy=<how often the lock was held by someone else> ms=<time taken>" and exits 0, or prints an error and exits 1.
if (args.Length != 4 || !int.TryParse(args[3], out var increments) || !SessionKey.TryParse(args[1] + args[2], out var key))
{
    await Console.Error.WriteLineAsync("Usage: Asm.FileLockChild <directory> <session id> <secret> <increments>");
    return 2;
}

var services = new ServiceCollection();
services.AddAsmDistributedCache().UseFileSystemDriver(args[0]);
await using var provider = services.BuildServiceProvider();
var driver = provider.GetRequiredService<ISessionDriver>();
var clock = TimeProvider.System;
var idle = TimeSpan.FromMinutes(20);

var warmUp = await driver.LoadAsync(new SessionLoadRequest { Key = key, Now = clock.GetUtcNow(), IdleTimeout = idle }, CancellationToken.None);
if (warmUp.Status != SessionLoadStatus.Found)
{
    await Console.Error.WriteLineAsync($"The warm-up load returned {warmUp.Status}.");
    return 1;
}

Console.WriteLine("ready");
await Console.In.ReadLineAsync();

var busy = 0;
var watch = System.Diagnostics.Stopwatch.StartNew();
for (var i = 0; i < increments; i++)
{
    while (true)
    {
        var loaded = await driver.LoadAsync(
            new SessionLoadRequest { Key = key, Now = clock.GetUtcNow(), IdleTimeout = idle, Lease = SessionLease.Create(TimeSpan.FromSeconds(30)) },
            CancellationToken.None);
        if (loaded.Status == SessionLoadStatus.LockBusy)
        {
            // The holder is in the other process: no wake-up comes, the bounded wait is the retry interval.
            busy++;
            await driver.WaitForReleaseAsync(key.Id, TimeSpan.FromMilliseconds(5), CancellationToken.None);
            continue;
        }

        if (loaded.Status != SessionLoadStatus.Found)
        {
            await Console.Error.WriteLineAsync($"A leased load returned {loaded.Status}.");
            return 1;
        }

        await Task.Delay(1);
        var next = BitConverter.ToInt32(loaded.Values["counter"]) + 1;
        var status = await driver.CommitAsync(
            new SessionCommitRequest
            {
                SessionId = key.Id,
                Now = clock.GetUtcNow(),
                IdleTimeout = idle,
                Lease = loaded.Lease,
                ReleaseLock = true,
                Changes = new Dictionary<string, byte[]?> { ["counter"] = BitConverter.GetBytes(next) },
            },
            CancellationToken.None);
        if (status != SessionCommitStatus.Committed)
        {
            await Console.Error.WriteLineAsync($"A leased commit returned {status}.");
            return 1;
        }

        break;
    }
}

Console.WriteLine($"busy={busy} ms={watch.ElapsedMilliseconds}");
return 0;
