namespace Asm.Caching.Drivers.Redis;

/// <summary>The scripts that hand a whole session record over to another driver and take one in.</summary>
internal static partial class RedisScripts
{
    /// <summary>
    /// Locks a session by id alone and reads its whole record (see <c>ISessionTransferDriver.ExportAsync</c>).
    /// KEYS[1] session hash, KEYS[2] the lock's waiting line (joined when the lock is busy and the caller waits, as
    /// <see cref="Load"/> does). ARGV[1] now (ms), ARGV[2] lease token, ARGV[3] lease duration (ms, from Redis's clock;
    /// also how long the line lasts), ARGV[4] lease clock override (unix ms; '' for Redis's TIME, always outside tests),
    /// ARGV[5] the caller's party (as <see cref="Load"/>'s), ARGV[6] '1' when the caller waits for a busy lock ('' when
    /// it skips the session: a party in line that never comes back costs the next holder the 200 ms a release keeps
    /// the lock for it).
    /// Returns {status} (2 Unknown, 3 Expired, 4 Destroyed, 6 LockBusy, 7 Corrupt) when nothing is exported, else
    /// {0, granted fence, secret, created at, idle expiry, absolute expiry ('' for never), purge-at, user ('' for none), zombie count Z,
    /// Z triples (secret, window end, profile of the regenerating request or '') oldest first, profile count P, P profiles
    /// oldest first, name, value, ...}.
    /// </summary>
    public const string Export = Prelude + LeaseClock + Mark + Replies + """
        local key, now, token, duration = KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
        local r = read(key)
        if r == nil then return { UNKNOWN } end
        if r == false then return { CORRUPT } end
        if r.x then return { DESTROYED } end
        if not live(r, now) then return { EXPIRED } end
        local t = clock(ARGV[4])
        if r.lt and r.lt ~= token and r.lx > t and r.lt ~= '~' .. ARGV[5] then
          if ARGV[6] == '1' then mark(duration, t, ARGV[5]) end
          return { LOCK_BUSY }
        end
        if r.lt and r.lt ~= token then unmark(ARGV[5]) end
        r.f = r.f + 1
        redis.call('HSET', key, 'f', str(r.f), 'lt', token, 'lx', str(t + duration))
        local ae = ''
        if r.ae then ae = str(r.ae) end
        table.sort(r.zombies, function(a, b) return a[2] < b[2] end)
        local out = { FOUND, r.f, r.s, r.c, r.ie, ae, r.pa, r.u or '', #r.zombies }
        for _, z in ipairs(r.zombies) do
          out[#out + 1] = z[1]
          out[#out + 1] = z[3]
          out[#out + 1] = z[4] or ''
        end
        out[#out + 1] = #r.profiles
        put_values(out, put_profiles(out, #out, r), r)
        return out
        """;

    /// <summary>
    /// Stores a whole record as a new, unlocked session unless the key exists (even as a tombstone).
    /// KEYS[1] session hash. ARGV[1] now (ms), ARGV[2] secret, ARGV[3] created at, ARGV[4] idle expiry,
    /// ARGV[5] absolute expiry ('' for never), ARGV[6] purge-at, ARGV[7] fence, ARGV[8] user ('' for none), ARGV[9] zombie count Z, then Z triples
    /// (secret, window end, profile of the regenerating request or '') oldest first, then the profile count P and P profiles oldest first, then name, value, ...
    /// Returns 1 when stored, 0 when the key exists.
    /// </summary>
    public const string Import = Prelude + Writes + """
        local key, now = KEYS[1], tonumber(ARGV[1])
        if redis.call('EXISTS', key) == 1 then return 0 end
        local w = { 'fmt', '1', 's', ARGV[2], 'c', ARGV[3], 'ie', ARGV[4], 'pa', ARGV[6], 'f', ARGV[7] }
        if ARGV[5] ~= '' then w[#w + 1], w[#w + 2] = 'ae', ARGV[5] end
        if ARGV[8] ~= '' then w[#w + 1], w[#w + 2] = 'u', ARGV[8] end
        local n, i = 0, 10
        for _ = 1, tonumber(ARGV[9]) do
          n = n + 1
          local zombie = str(n) .. ':' .. ARGV[i + 1]
          if ARGV[i + 2] ~= '' then zombie = zombie .. ':' .. ARGV[i + 2] end
          w[#w + 1], w[#w + 2] = 'z:' .. ARGV[i], zombie
          i = i + 3
        end
        local profiles = tonumber(ARGV[i])
        i = i + 1
        for _ = 1, profiles do
          n = n + 1
          w[#w + 1], w[#w + 2] = 'p:' .. ARGV[i], str(n)
          i = i + 1
        end
        while i < #ARGV do
          w[#w + 1], w[#w + 2] = 'v:' .. ARGV[i], ARGV[i + 1]
          i = i + 2
        end
        w[#w + 1], w[#w + 2] = 'n', str(n)
        batch('HSET', key, w)
        expire(key, tonumber(ARGV[6]), now)
        return 1
        """;
}
