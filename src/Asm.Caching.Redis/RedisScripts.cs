namespace Asm.Caching.Drivers.Redis;

/// <summary>
/// The Lua scripts of the Redis driver: one script per operation, so that every operation is atomic and one round trip.
/// They follow <see cref="Records.SessionRecord"/> step for step. A load without a lease that writes nothing runs no
/// script: <see cref="RedisRecordReader"/> reads the hash as <c>read</c> below does, and the record's own rules judge it.
/// </summary>
/// <remarks>
/// <para>Stored layout of a session: one hash at <c>&lt;InstanceName&gt;s:{&lt;session id&gt;}</c> (the braces are a
/// Cluster hash tag, so that every key a session may ever use shares one slot). Its fields:</para>
/// <code>
/// fmt          layout version, "1"; any other value (or none) makes the record Corrupt
/// s            current secret
/// c            created at (unix ms)
/// ie           idle expiry (unix ms)
/// ae           absolute expiry (unix ms); absent for never
/// f            fence: the last fencing value issued, +1 per lease granted (absent = 0)
/// lt, lx       lock token and lock expiry (unix ms, Redis's own clock); both absent when unlocked; lt is
///              "~&lt;party&gt;" while a release keeps the lock for the first party in its waiting line (below)
/// x            "1" on a tombstone (a destroyed session: no secret, values, lock, zombies or profiles)
/// pa           purge-at: when the record may go (unix ms); the key's PEXPIRE is set from it
/// n            insertion counter that orders zombies and profiles
/// z:&lt;secret&gt;   a zombie secret: "&lt;seq&gt;:&lt;expiry ms&gt;" or "&lt;seq&gt;:&lt;expiry ms&gt;:&lt;profile&gt;" (seq from n; the
///              lowest seq is the oldest; profile: the client profile of the request that replaced the secret)
/// p:&lt;profile&gt;  a client profile: "&lt;seq&gt;" (seq from n; the newest MaxProfiles are kept)
/// v:&lt;name&gt;     a session value: opaque bytes, as committed
/// u            the user the session is bound to (the raw user id, UTF-8); absent when unbound; a tombstone keeps it
/// </code>
/// <para>
/// Integers are decimal strings of at most 16 digits. Any other field, or a field that does not parse, makes the
/// record Corrupt, as does a key of another type. Lock leases (<c>lx</c>) are granted, renewed and judged by Redis's
/// own clock (<c>TIME</c>), so that servers whose clocks disagree still exclude each other. The other times (idle and
/// absolute expiry, zombie windows) come from the caller (the application's <see cref="TimeProvider"/>) as unix ms in
/// ARGV; the physical PEXPIRE is set from <c>purge-at - now</c> (at least 1 ms).
/// </para>
/// <para>A lock's waiting line: a sorted set at <c>&lt;InstanceName&gt;w:{&lt;session id&gt;}</c> (same slot) of the
/// parties (one per driver instance, so one per app) whose load or export was refused because the lock is busy, in the
/// order they were first refused, kept for the last refused caller's lease duration. A release (a commit that releases,
/// a release) takes the first party off the line, keeps the lock for it for 200 ms (<c>lt</c> <c>~&lt;party&gt;</c>, a
/// lease no token holds, free to that party's loads), and publishes; a lock nobody waits for is released without a
/// message. So a party woken by the message gets the lock before the load that the releasing process sent right behind
/// its release, and parties take turns. A waiter that missed its message (its line expired, or it runs a version that
/// queues none) retries on its own bound; a party that joined and no longer waits (its request gave up) costs the next
/// holder the 200 ms, so an export that skips a locked session (a background mover) joins no line. A destruction takes
/// the line off, and publishes if there was one. The line's key may be left out: while a Cluster slot migrates, a node
/// refuses a script whose keys are not all on it, and the driver sends it again without the line; a release then always
/// publishes and keeps the lock for nobody, and a refused load joins no line. An earlier version marked a waited-for
/// lock with a string at the same key: a release that finds one takes it off and publishes, and a refused load leaves
/// it.</para>
/// <para>A cache entry is one hash at <c>&lt;InstanceName&gt;c:&lt;key&gt;</c> with fields <c>d</c> (the value),
/// <c>e</c> (logical expiry, unix ms; absent for never), <c>a</c> (absolute expiry; absent for none) and
/// <c>sl</c> (sliding period in ms; absent for none).</para>
/// <para>Session status codes returned by the scripts: 0 Found, 1 Zombie, 2 Unknown, 3 Expired, 4 Destroyed,
/// 5 ZombieExpired, 6 LockBusy, 7 Corrupt. Commit status codes: 0 Committed, 1 LockLost, 2 NotFound.</para>
/// </remarks>
internal static partial class RedisScripts
{
    /// <summary>
    /// What every session script starts with: the status codes, <c>str</c>, <c>read</c> and <c>live</c>. A script
    /// appends the other helpers it calls (<see cref="Authentication"/>, <see cref="LeaseClock"/>, <see cref="Writes"/>,
    /// <see cref="Mark"/>, <see cref="HandOver"/>, <see cref="Wake"/>, <see cref="Replies"/>), and only those: Redis runs
    /// a script's whole text on every call, so every helper it defines costs a closure per call even when unused.
    /// </summary>
    /// <remarks>
    /// <c>read</c> is the one reader of a record: one <c>HGETALL</c>, then one pass that tells the fields apart by their
    /// first two bytes and validates every one of them, so that every script sees a damaged record as unreadable. Values
    /// are not copied out: <c>r.vals</c> holds the index of each value's field name in <c>r.raw</c> (the value follows it).
    /// </remarks>
    private const string Prelude = """
        local FOUND, ZOMBIE, UNKNOWN, EXPIRED, DESTROYED, ZOMBIE_EXPIRED, LOCK_BUSY, CORRUPT = 0, 1, 2, 3, 4, 5, 6, 7
        local COMMITTED, LOCK_LOST, NOT_FOUND = 0, 1, 2
        local byte, find, match, sub, format, tonumber = string.byte, string.find, string.match, string.sub, string.format, tonumber

        local function str(n) return format('%d', n) end

        -- Reads the record at key: nil when there is none, false when it cannot be read (a field that does not parse, an
        -- unknown field, a key of another type), else the record.
        local function read(key)
          local raw = redis.pcall('HGETALL', key)
          if raw.err then return false end
          local count = #raw
          if count == 0 then return nil end
          local r = { raw = raw, vals = {}, profiles = {}, zombies = {}, f = 0, n = 0 }
          local vals, nv = r.vals, 0
          for i = 1, count, 2 do
            local name, v = raw[i], raw[i + 1]
            local b1, b2 = byte(name, 1, 2)
            if b2 == 58 then
              -- 'v:<name>', 'p:<profile>', 'z:<secret>'
              if b1 == 118 then
                nv = nv + 1
                vals[nv] = i
              elseif b1 == 112 then
                if #v > 16 or not find(v, '^%-?%d+$') then return false end
                r.profiles[#r.profiles + 1] = { sub(name, 3), tonumber(v) }
              elseif b1 == 122 then
                local seq, exp, profile = match(v, '^(%d+):(%-?%d+)$')
                if not seq then seq, exp, profile = match(v, '^(%d+):(%-?%d+):(.+)$') end
                if not seq or #seq > 16 or #exp > 16 then return false end
                r.zombies[#r.zombies + 1] = { sub(name, 3), tonumber(seq), tonumber(exp), profile }
              else
                return false
              end
            elseif name == 's' or name == 'lt' or name == 'u' then
              r[name] = v
            elseif name == 'c' or name == 'ie' or name == 'pa' or name == 'f' or name == 'ae' or name == 'n' or name == 'lx' then
              if #v > 16 or not find(v, '^%-?%d+$') then return false end
              r[name] = tonumber(v)
            elseif name == 'fmt' or name == 'x' then
              if v ~= '1' then return false end
              r[name] = true
            else
              return false
            end
          end
          if not r.fmt then return false end
          if r.x then return r end
          if not r.s or r.s == '' or not r.c or not r.ie or not r.pa then return false end
          if (r.lt == nil) ~= (r.lx == nil) then return false end
          return r
        end

        local function live(r, now)
          return not r.x and r.ie > now and (r.ae == nil or r.ae > now)
        end

        """;

    /// <summary>Checks a presented secret against a record (<c>authenticate</c>).</summary>
    private const string Authentication = """
        -- Returns the status and, for a live zombie, the profile stored with it and whether it is the newest zombie
        -- (the secret the current one replaced); for a zombie whose window has closed, also when it closed (4th).
        local function authenticate(r, secret, now)
          if r.x then return DESTROYED end
          local status, zombie
          if r.s == secret then
            status = FOUND
          else
            local zombies = r.zombies
            for i = 1, #zombies do
              if zombies[i][1] == secret then zombie = zombies[i] break end
            end
            if not zombie then return UNKNOWN end
            if zombie[3] > now then status = ZOMBIE else status = ZOMBIE_EXPIRED end
          end
          if status == ZOMBIE_EXPIRED then return status, nil, false, zombie[3] end
          if not live(r, now) then return EXPIRED end
          if status == ZOMBIE then
            local latest = true
            for _, z in ipairs(r.zombies) do
              if z[2] > zombie[2] then latest = false end
            end
            return status, zombie[4], latest
          end
          return status
        end

        """;

    /// <summary>The clock lock leases are judged by (<c>clock</c>).</summary>
    private const string LeaseClock = """
        -- Redis's own clock in unix ms: lock leases are judged by it, never by a caller's clock. A test may pass
        -- the time instead (a non-empty override), to run the record's rules on a fake clock.
        local function clock(override)
          if override ~= nil and override ~= '' then return tonumber(override) end
          local t = redis.call('TIME')
          return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end

        """;

    /// <summary>Batched writes and the sliding expiry (<c>batch</c>, <c>slide</c>, <c>expire</c>).</summary>
    private const string Writes = """
        -- Runs HSET or HDEL on key with the flat list of fields (field, value pairs for HSET), in as few calls as unpack allows.
        local function batch(command, key, list)
          local count = #list
          for i = 1, count, 1000 do
            local last = i + 999
            if last > count then last = count end
            redis.call(command, key, unpack(list, i, last))
          end
        end

        -- Slides the idle expiry to now + idle (capped by the absolute expiry) and keeps the record one more idle period
        -- (or until its last zombie closes): appends ie and pa to the HSET list w and returns the new purge-at.
        local function slide(r, now, idle, w)
          local ie = now + idle
          if r.ae and r.ae < ie then ie = r.ae end
          local pa = ie + idle
          local zombies = r.zombies
          for i = 1, #zombies do
            if zombies[i][3] > pa then pa = zombies[i][3] end
          end
          local n = #w
          w[n + 1], w[n + 2], w[n + 3], w[n + 4] = 'ie', str(ie), 'pa', str(pa)
          return pa
        end

        -- Sets the key's physical expiry from the record's purge-at.
        local function expire(key, pa, now)
          local ttl = pa - now
          if ttl < 1 then ttl = 1 end
          redis.call('PEXPIRE', key, str(ttl))
        end

        """;

    /// <summary>The lock's waiting line (<c>mark</c>, <c>unmark</c>), for the scripts that refuse a busy lock.</summary>
    private const string Mark = """
        -- Puts the refused caller's party (its driver) in the lock's waiting line (KEYS[2]: a sorted set by first refusal,
        -- so a party refused again keeps its place) and keeps the line ttl ms. A line that cannot be written (out of
        -- memory, too few replicas, an older version's mark there) is no error: its waiter wakes on its own bound.
        local function mark(ttl, t, party)
          if KEYS[2] and type(redis.pcall('ZADD', KEYS[2], 'NX', t, party)) == 'number' then
            redis.pcall('PEXPIRE', KEYS[2], str(math.max(1, ttl)))
          end
        end

        -- Takes the caller's party out of the line when it takes a lock that was not kept for it (a lease that ran out):
        -- left in line, it would later be kept a lock that its own requests no longer wait for.
        local function unmark(party)
          if KEYS[2] then redis.pcall('ZREM', KEYS[2], party) end
        end

        """;

    /// <summary>
    /// The release's hand-over (<c>hand_over</c>), for the scripts that release a lock. Its <c>ZPOPMIN</c> comes before
    /// the lock's fields are written: Redis at its memory limit (<c>noeviction</c>) refuses a write that needs memory
    /// only as a script's first write, so a release still keeps the lock for the party in line there
    /// (<c>RedisOutageTests.ReleaseLockAsync_RedisAtItsMemoryLimitWithAnotherAppWaiting_*</c>).
    /// </summary>
    private const string HandOver = """
        -- Releases the lock into the HSET list w and the HDEL list d. The party first in the lock's waiting line (KEYS[2])
        -- is taken off it, and the lock is kept for it for 200 ms (Redis's clock): no token holds the lease '~' .. party,
        -- and a load of that party takes it as a free lock. With nobody in line, lt and lx go. Returns whether to publish
        -- the release: when a party was served, and when the waiter cannot be named (an older version's mark, which is a
        -- string; or the line's key left out, as while a Cluster slot migrates).
        local function hand_over(w, d, clock_override)
          local party = true
          if KEYS[2] then
            local first = redis.pcall('ZPOPMIN', KEYS[2])
            if first.err then party = redis.call('DEL', KEYS[2]) == 1 else party = first[1] or false end
          end
          if type(party) == 'string' then
            local n = #w
            w[n + 1], w[n + 2], w[n + 3], w[n + 4] = 'lt', '~' .. party, 'lx', str(clock(clock_override) + 200)
            return true
          end
          local n = #d
          d[n + 1], d[n + 2] = 'lt', 'lx'
          return party
        end

        """;

    /// <summary>The destruction's wake-up (<c>wake</c>).</summary>
    private const string Wake = """
        -- Publishes message on channel if a waiter is in the lock's line (or marked it, in an older version), and takes
        -- the line off; always when the line's key was not passed.
        local function wake(channel, message)
          if not KEYS[2] or redis.call('DEL', KEYS[2]) == 1 then redis.call('PUBLISH', channel, message) end
        end

        """;

    /// <summary>The parts of a record that replies carry (<c>put_profiles</c>, <c>put_values</c>).</summary>
    private const string Replies = """
        -- Appends the profiles, oldest first, to the reply out (of n items); returns its new length.
        local function put_profiles(out, n, r)
          local profiles = r.profiles
          local count = #profiles
          if count > 1 then table.sort(profiles, function(a, b) return a[2] < b[2] end) end
          for i = 1, count do out[n + i] = profiles[i][1] end
          return n + count
        end

        -- Appends the values, as name and value pairs, to the reply out (of n items).
        local function put_values(out, n, r)
          local raw, vals = r.raw, r.vals
          for i = 1, #vals do
            local at = vals[i]
            out[n + 1], out[n + 2] = sub(raw[at], 3), raw[at + 1]
            n = n + 2
          end
        end

        """;

    /// <summary>
    /// Loads a session, slides its idle expiry and optionally acquires its lease.
    /// KEYS[1] session hash, KEYS[2] the lock's waiting line (joined when the lock is busy). ARGV[1] presented secret,
    /// ARGV[2] now (ms), ARGV[3] idle timeout (ms), ARGV[4] lease token ('' to load without locking), ARGV[5] lease
    /// duration (ms, from Redis's clock; also how long the lock's waiting line lasts),
    /// ARGV[6] lease clock override (unix ms; '' for Redis's TIME, always outside tests),
    /// ARGV[7] slide threshold (ms: the idle expiry is written only when it moves by more), ARGV[8] the caller's party
    /// (its driver: a lock kept for it by a release is free to it; a refused load puts it in the lock's waiting line).
    /// Returns {status} when the session is not usable ({status, end of its window (ms)} for a zombie whose window has
    /// closed), else {status, created at, granted fence (0 for none),
    /// current secret ('' unless status is Zombie), zombie profile ('' for none), user id ('' when unbound),
    /// 1 when the zombie is the newest (the secret the current one replaced) else 0, profile count,
    /// profiles oldest first..., name, value, ...}.
    /// </summary>
    public const string Load = Prelude + Authentication + LeaseClock + Writes + Mark + Replies + """
        local key, secret, now, idle, token = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
        local r = read(key)
        if r == nil then return { UNKNOWN } end
        if r == false then return { CORRUPT } end
        local status, zombie_profile, zombie_latest, zombie_closed = authenticate(r, secret, now)
        if status == ZOMBIE_EXPIRED then return { status, zombie_closed } end
        if status ~= FOUND and status ~= ZOMBIE then return { status } end
        local fence, w = 0, nil
        if token ~= '' then
          local t = clock(ARGV[6])
          if r.lt and r.lt ~= token and r.lx > t and r.lt ~= '~' .. ARGV[8] then
            mark(tonumber(ARGV[5]), t, ARGV[8])
            return { LOCK_BUSY }
          end
          if r.lt and r.lt ~= token then unmark(ARGV[8]) end
          fence = r.f + 1
          w = { 'f', str(fence), 'lt', token, 'lx', str(t + tonumber(ARGV[5])) }
        end
        -- Most loads write nothing: the idle expiry slides only when that moves it by more than the threshold.
        local ie, pa = now + idle, nil
        if r.ae and r.ae < ie then ie = r.ae end
        if ie - r.ie > tonumber(ARGV[7]) then
          w = w or {}
          pa = slide(r, now, idle, w)
        end
        if w then redis.call('HSET', key, unpack(w)) end
        if pa then expire(key, pa, now) end
        local current = ''
        if status == ZOMBIE then current = r.s end
        local out = { status, r.c, fence, current, zombie_profile or '', r.u or '', zombie_latest and 1 or 0, #r.profiles }
        put_values(out, put_profiles(out, 8, r), r)
        return out
        """;

    /// <summary>
    /// Creates a session or applies a delta to it, and optionally releases the lease.
    /// KEYS[1] session hash, KEYS[2] the lock's waiting line. ARGV[1] now (ms), ARGV[2] idle timeout (ms), ARGV[3] secret to create
    /// with ('' for an existing session), ARGV[4] absolute expiry (ms, '' for never; creation only), ARGV[5] lease token
    /// ('' for a lockless delta), ARGV[6] lease fence, ARGV[7] '1' to release the lease, ARGV[8] '1' to clear every value
    /// first, ARGV[9] max profiles, ARGV[10] release channel, ARGV[11] session id (the release message), ARGV[12] lease
    /// clock override (unix ms; '' for Redis's TIME, always outside tests), ARGV[13] change count N, then N triples (op
    /// 's' set / 'd' delete, name, value; every name at most once), then the profiles to add.
    /// Returns 0 Committed, 1 LockLost, 2 NotFound; when it releases the lease with a party in the lock's waiting line,
    /// keeps the lock for the first one (<c>hand_over</c>) and publishes the session id on the channel.
    /// </summary>
    /// <remarks>Every write is gathered first: one HDEL (cleared values, deleted values, dropped profiles, the released
    /// lock), then one HSET (values, profiles, expiries), then PEXPIRE when the purge-at moved.</remarks>
    public const string Commit = Prelude + LeaseClock + Writes + HandOver + """
        local key, now, idle = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
        local create, token, fence = ARGV[3], ARGV[5], tonumber(ARGV[6])
        local r, w, d = nil, {}, {}
        if create ~= '' then
          if redis.call('EXISTS', key) == 1 then return NOT_FOUND end
          r = { s = create, c = now, f = 0, n = 0, vals = {}, profiles = {}, zombies = {} }
          w = { 'fmt', '1', 's', create, 'c', str(now), 'f', '0' }
          if ARGV[4] ~= '' then
            r.ae = tonumber(ARGV[4])
            w[9], w[10] = 'ae', ARGV[4]
          end
        else
          r = read(key)
          if not r or not live(r, now) then return NOT_FOUND end
          if token ~= '' and (fence ~= r.f or r.lt ~= token) then return LOCK_LOST end
        end

        local nw, nd = #w, 0
        if ARGV[8] == '1' then
          local raw, vals = r.raw, r.vals
          for j = 1, #vals do d[j] = raw[vals[j]] end
          nd = #vals
        end
        local i = 14
        for _ = 1, tonumber(ARGV[13]) do
          if ARGV[i] == 's' then
            w[nw + 1], w[nw + 2] = 'v:' .. ARGV[i + 1], ARGV[i + 2]
            nw = nw + 2
          else
            nd = nd + 1
            d[nd] = 'v:' .. ARGV[i + 1]
          end
          i = i + 3
        end

        local max_profiles = tonumber(ARGV[9])
        if i <= #ARGV or #r.profiles > max_profiles then
          -- The newest max_profiles are kept, by seq; a profile added again becomes the newest.
          local seqs, n = {}, r.n
          for _, p in ipairs(r.profiles) do seqs[p[1]] = p[2] end
          for j = i, #ARGV do
            n = n + 1
            seqs[ARGV[j]] = n
          end
          if n ~= r.n then
            w[nw + 1], w[nw + 2] = 'n', str(n)
            nw = nw + 2
          end
          local profiles = {}
          for name, seq in pairs(seqs) do profiles[#profiles + 1] = { name, seq } end
          table.sort(profiles, function(a, b) return a[2] < b[2] end)
          for j, p in ipairs(profiles) do
            if j <= #profiles - max_profiles then
              nd = nd + 1
              d[nd] = 'p:' .. p[1]
            elseif p[2] > r.n then
              w[nw + 1], w[nw + 2] = 'p:' .. p[1], str(p[2])
              nw = nw + 2
            end
          end
        end

        local wake = false
        if ARGV[7] == '1' and token ~= '' and r.lt == token and r.f == fence then wake = hand_over(w, d, ARGV[12]) end
        local pa = slide(r, now, idle, w)
        if #d > 0 then batch('HDEL', key, d) end
        batch('HSET', key, w)
        if pa ~= r.pa then expire(key, pa, now) end
        if wake then redis.call('PUBLISH', ARGV[10], ARGV[11]) end
        return COMMITTED
        """;

    /// <summary>
    /// Extends a lease that is still held.
    /// KEYS[1] session hash. ARGV[1] now (ms), ARGV[2] lease token, ARGV[3] lease fence, ARGV[4] lease duration (ms,
    /// from Redis's clock), ARGV[5] lease clock override (unix ms; '' for Redis's TIME, always outside tests).
    /// Returns 1 when renewed, 0 when the lease was lost (or the session is gone).
    /// </summary>
    public const string Renew = Prelude + LeaseClock + """
        local key, now, token, fence, duration = KEYS[1], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
        local r = read(key)
        if not r or not live(r, now) or r.lt ~= token or r.f ~= fence then return 0 end
        redis.call('HSET', key, 'lx', str(clock(ARGV[5]) + duration))
        return 1
        """;

    /// <summary>
    /// Releases a lease if it is still held; the token alone names the holder, so a caller whose load was cancelled
    /// before it saw the grant can still give the lock back.
    /// KEYS[1] session hash, KEYS[2] the lock's waiting line. ARGV[1] lease token, ARGV[2] release channel, ARGV[3]
    /// session id, ARGV[4] lease clock override (unix ms; '' for Redis's TIME, always outside tests).
    /// Returns 1 when released (keeping the lock for the first party in line, if any, and then publishing), 0 when the
    /// lease was not held.
    /// </summary>
    public const string Release = Prelude + LeaseClock + HandOver + """
        local key, token = KEYS[1], ARGV[1]
        local r = read(key)
        if not r or r.lt ~= token then return 0 end
        local w, d = {}, {}
        local wake = hand_over(w, d, ARGV[4])
        if #w > 0 then redis.call('HSET', key, unpack(w)) else redis.call('HDEL', key, unpack(d)) end
        if wake then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
        return 1
        """;

    /// <summary>
    /// Replaces the secret of a live session; the replaced one becomes a zombie.
    /// KEYS[1] session hash. ARGV[1] presented secret, ARGV[2] new secret, ARGV[3] now (ms),
    /// ARGV[4] zombie window end (ms), ARGV[5] max zombies, ARGV[6] client profile of the regenerating request ('' for none).
    /// Returns 0 Committed, 2 NotFound.
    /// </summary>
    public const string Regenerate = Prelude + Authentication + Writes + RegenerateBody;

    /// <summary>
    /// Regenerates (as <see cref="Regenerate"/>) and binds the session to a user in the same step.
    /// KEYS[1] session hash. ARGV[1] user id, then the arguments of <see cref="Regenerate"/>.
    /// Returns {0 Committed or 2 NotFound, the user the session was bound to before ('' for none)}.
    /// </summary>
    public const string Bind = Prelude + Authentication + Writes + """
        local user = table.remove(ARGV, 1)
        local before = redis.pcall('HGET', KEYS[1], 'u')
        if type(before) ~= 'string' then before = '' end
        local function regenerate()
        """ + "\n" + RegenerateBody + "\n" + """
        end
        local status = regenerate()
        if status == COMMITTED then redis.call('HSET', KEYS[1], 'u', user) end
        return { status, before }
        """;

    /// <summary>
    /// Reads what a session record tells about its session, touching nothing.
    /// KEYS[1] session hash. Returns nil when there is no readable record, else {destroyed (0 or 1), created at,
    /// idle expiry, absolute expiry ('' for never), user id ('' when unbound), profiles oldest first...}.
    /// </summary>
    public const string Info = Prelude + Replies + """
        local r = read(KEYS[1])
        if not r then return false end
        if r.x then return { 1, 0, 0, '', r.u or '' } end
        local out = { 0, r.c, r.ie, r.ae or '', r.u or '' }
        put_profiles(out, 5, r)
        return out
        """;

    /// <summary>The body of <see cref="Regenerate"/>, shared with <see cref="Bind"/>.</summary>
    private const string RegenerateBody = """
        local key, secret, new_secret, now = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
        local zombie_end, max_zombies = tonumber(ARGV[4]), tonumber(ARGV[5])
        local r = read(key)
        if not r then return NOT_FOUND end
        local status = authenticate(r, secret, now)
        if status ~= FOUND and status ~= ZOMBIE then return NOT_FOUND end
        local n = r.n + 1
        local zombies = {}
        for _, z in ipairs(r.zombies) do
          if z[1] ~= r.s then zombies[#zombies + 1] = z end
        end
        zombies[#zombies + 1] = { r.s, n, zombie_end }
        local zombie = str(n) .. ':' .. str(zombie_end)
        if ARGV[6] ~= '' then zombie = zombie .. ':' .. ARGV[6] end
        table.sort(zombies, function(a, b) return a[2] < b[2] end)
        local d = {}
        for j = 1, #zombies - max_zombies do d[j] = 'z:' .. zombies[j][1] end
        local pa = r.pa
        if zombie_end > pa then pa = zombie_end end
        -- The replaced secret's zombie is written before the oldest are dropped: with max zombies 0 it goes at once.
        redis.call('HSET', key, 'z:' .. r.s, zombie, 's', new_secret, 'n', str(n), 'pa', str(pa))
        if #d > 0 then batch('HDEL', key, d) end
        if pa ~= r.pa then expire(key, pa, now) end
        return COMMITTED
        """;

    /// <summary>
    /// Replaces whatever a session stored with a tombstone, and wakes lock waiters if one marked the lock (always when
    /// KEYS[2] is left out).
    /// KEYS[1] session hash, KEYS[2] the lock's waiting line. ARGV[1] now (ms), ARGV[2] tombstone end (ms), ARGV[3] release
    /// channel, ARGV[4] session id.
    /// The tombstone keeps the user the session was bound to, so that its end is reported with it; a tombstone that
    /// would end at once (ARGV[2] at or before ARGV[1]) is no record, and the key is deleted. Returns 1.
    /// </summary>
    public const string Destroy = Prelude + Writes + Wake + """
        local key, now, purge_at = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
        if purge_at <= now then
          redis.call('DEL', key)
          wake(ARGV[3], ARGV[4])
          return 1
        end
        -- Whatever the key holds (even another type), the fence carries over and the user is kept.
        local kept = redis.pcall('HMGET', key, 'f', 'u')
        local fence, user = 0, nil
        if kept.err then
          redis.call('DEL', key)
        else
          if type(kept[1]) == 'string' and #kept[1] <= 16 and find(kept[1], '^%-?%d+$') then fence = tonumber(kept[1]) end
          if type(kept[2]) == 'string' then user = kept[2] end
        end
        -- The tombstone is written over the record, then every other field goes: a hash never disappears, so the script
        -- cannot fail halfway while its Cluster slot migrates (a missing key there belongs to the other node). A key of
        -- another type is deleted first, and can still meet that refusal.
        local names = redis.call('HKEYS', key)
        local w = { 'fmt', '1', 'x', '1', 'f', str(fence), 'pa', str(purge_at) }
        if user then w[9], w[10] = 'u', user end
        redis.call('HSET', key, unpack(w))
        local tombstone, d = { fmt = true, x = true, f = true, pa = true, u = true }, {}
        for i = 1, #names do
          if not tombstone[names[i]] then d[#d + 1] = names[i] end
        end
        if #d > 0 then batch('HDEL', key, d) end
        expire(key, purge_at, now)
        wake(ARGV[3], ARGV[4])
        return 1
        """;

    /// <summary>
    /// Stores a cache entry, replacing any earlier one.
    /// KEYS[1] entry hash. ARGV[1] value, ARGV[2] now (ms), ARGV[3] expiry (ms, '' for never),
    /// ARGV[4] absolute expiry (ms, '' for none), ARGV[5] sliding period (ms, '' for none). Returns 1.
    /// </summary>
    public const string CacheSet = """
        local key, now, e, a, sl = KEYS[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
        redis.call('DEL', key)
        redis.call('HSET', key, 'd', ARGV[1])
        if a ~= '' then redis.call('HSET', key, 'a', a) end
        if sl ~= '' then redis.call('HSET', key, 'sl', sl) end
        if e ~= '' then
          redis.call('HSET', key, 'e', e)
          local ttl = tonumber(e) - now
          if ttl < 1 then ttl = 1 end
          redis.call('PEXPIRE', key, string.format('%d', ttl))
        end
        return 1
        """;

    /// <summary>
    /// Reads (ARGV[2] = '1') or only refreshes (ARGV[2] = '0') a cache entry, sliding its expiry.
    /// KEYS[1] entry hash. ARGV[1] now (ms).
    /// Returns the value when reading, 1 when refreshing; nil when the entry is missing, expired or unreadable
    /// (an expired entry is deleted).
    /// </summary>
    public const string CacheGet = """
        local key, now, read = KEYS[1], tonumber(ARGV[1]), ARGV[2] == '1'
        local function int(v)
          if type(v) ~= 'string' or #v > 16 or not string.match(v, '^%-?%d+$') then return nil end
          return tonumber(v)
        end
        local raw = redis.pcall('HMGET', key, 'd', 'e', 'a', 'sl')
        if raw.err or not raw[1] then return false end
        local e, a, sl = int(raw[2]), int(raw[3]), int(raw[4])
        if (raw[2] and not e) or (raw[3] and not a) or (raw[4] and not sl) then return false end
        if e and e <= now then
          redis.call('DEL', key)
          return false
        end
        if sl then
          e = now + sl
          if a and a < e then e = a end
          redis.call('HSET', key, 'e', string.format('%d', e))
          local ttl = e - now
          if ttl < 1 then ttl = 1 end
          redis.call('PEXPIRE', key, string.format('%d', ttl))
        end
        if read then return raw[1] end
        return 1
        """;
}
