#!/usr/bin/env python3
"""What the two unbuilt levers on Redis script time would give, measured beside today's scripts (docs/benchmarks.md).

    bench/script-levers.py                 20000 calls per row in 20 slices
    bench/script-levers.py -n 40000 --slices 40

Neither lever is in the driver; both are measured here so that the choice rests on numbers:
- "functions": today's Load and Commit, unchanged, registered as a Redis 7 library (FUNCTION LOAD) and called with
  FCALL: the helpers are defined once when the library loads instead of on every call.
- "compact": a prototype of a compact stored layout, called with EVALSHA: the session's metadata (secret, times, fence,
  lock, user, profiles and zombies) packed into one field 'm' with cmsgpack, the values beside it as today ('v:<name>').
  It keeps the rules that the bench rows exercise (the secret and zombies checked, the liveness, the lease judged by
  Redis's clock, the sliding threshold, the fence, the release and its wake-up) and checks the type of every metadata
  item, so that it does the work a real layout would; it is not the driver's code and stores nothing a driver reads.

Each version runs on its own redis-server (free loopback port, no persistence), on a session shaped like
bench/run.sh's, with bench/redis-scripts.py's rows and method (pipelined slices alternating between the versions, the
fastest slice of each, Redis's own usec per call). Stops the servers it started and removes their folder.
"""
import argparse
import importlib.util
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location('redis_scripts', os.path.join(HERE, 'redis-scripts.py'))
rs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rs)

# The compact layout's helpers. m = { 2, secret, created, idle expiry, absolute expiry or false, purge-at, fence, seq,
# lock token or false, lock expiry or false, user or false, tombstone flag, { profile, seq, ... },
# { zombie secret, seq, window end, profile or false, ... } }.
COMPACT_PRELUDE = r"""
local FOUND, ZOMBIE, UNKNOWN, EXPIRED, DESTROYED, ZOMBIE_EXPIRED, LOCK_BUSY, CORRUPT = 0, 1, 2, 3, 4, 5, 6, 7
local COMMITTED, LOCK_LOST, NOT_FOUND = 0, 1, 2
local byte, format, type = string.byte, string.format, type

local function read(key)
  local raw = redis.pcall('HGETALL', key)
  if raw.err then return false end
  local count = #raw
  if count == 0 then return nil end
  local m, vals, nv = nil, {}, 0
  for i = 1, count, 2 do
    local name = raw[i]
    if name == 'm' then m = raw[i + 1]
    elseif byte(name, 1) == 118 and byte(name, 2) == 58 then nv = nv + 1 vals[nv] = i
    else return false end
  end
  if not m then return false end
  local ok, r = pcall(cmsgpack.unpack, m)
  if not ok or type(r) ~= 'table' or r[1] ~= 2 then return false end
  if type(r[2]) ~= 'string' or type(r[3]) ~= 'number' or type(r[4]) ~= 'number' or type(r[6]) ~= 'number'
    or type(r[7]) ~= 'number' or type(r[8]) ~= 'number' or type(r[13]) ~= 'table' or type(r[14]) ~= 'table' then
    return false
  end
  if r[5] and type(r[5]) ~= 'number' then return false end
  if (r[9] == false) ~= (r[10] == false) then return false end
  r.raw, r.vals = raw, vals
  return r
end

local function live(r, now) return not r[12] and r[4] > now and (not r[5] or r[5] > now) end

local function authenticate(r, secret, now)
  if r[12] then return DESTROYED end
  local status, profile, latest = FOUND, nil, false
  if r[2] ~= secret then
    local z, at = r[14], nil
    for i = 1, #z, 4 do if z[i] == secret then at = i break end end
    if not at then return UNKNOWN end
    if z[at + 2] <= now then return ZOMBIE_EXPIRED end
    status, profile = ZOMBIE, z[at + 3]
    latest = true
    for i = 2, #z, 4 do if z[i] > z[at + 1] then latest = false end end
  end
  if not live(r, now) then return EXPIRED end
  return status, profile, latest
end

local function clock(override)
  if override ~= nil and override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function slide(r, now, idle)
  local ie = now + idle
  if r[5] and r[5] < ie then ie = r[5] end
  local pa = ie + idle
  local z = r[14]
  for i = 3, #z, 4 do if z[i] > pa then pa = z[i] end end
  r[4], r[6] = ie, pa
  return pa
end

local function pack(r) r.raw, r.vals = nil, nil return cmsgpack.pack(r) end
local function expire(key, pa, now) redis.call('PEXPIRE', key, format('%d', math.max(1, pa - now))) end
local function mark(ttl) if KEYS[2] then redis.pcall('SET', KEYS[2], '1', 'PX', format('%d', math.max(1, ttl))) end end
local function wake(channel, message)
  if not KEYS[2] or redis.call('DEL', KEYS[2]) == 1 then redis.call('PUBLISH', channel, message) end
end
"""

# Load, with the arguments and reply of today's Load.
COMPACT_LOAD = COMPACT_PRELUDE + r"""
local key, secret, now, idle, token = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local r = read(key)
if r == nil then return { UNKNOWN } end
if r == false then return { CORRUPT } end
local status, zombie_profile, zombie_latest = authenticate(r, secret, now)
if status ~= FOUND and status ~= ZOMBIE then return { status } end
local fence, dirty, pa = 0, false, nil
if token ~= '' then
  local t = clock(ARGV[6])
  if r[9] and r[9] ~= token and r[10] > t then
    mark(tonumber(ARGV[5]))
    return { LOCK_BUSY }
  end
  r[7] = r[7] + 1
  fence, r[9], r[10], dirty = r[7], token, t + tonumber(ARGV[5]), true
end
local ie = now + idle
if r[5] and r[5] < ie then ie = r[5] end
if ie - r[4] > tonumber(ARGV[7]) then pa, dirty = slide(r, now, idle), true end
local current = ''
if status == ZOMBIE then current = r[2] end
local profiles, raw, vals = r[13], r.raw, r.vals
local out = { status, r[3], fence, current, zombie_profile or '', r[11] or '', zombie_latest and 1 or 0, #profiles / 2 }
local n = 8
for i = 1, #profiles, 2 do n = n + 1 out[n] = profiles[i] end
for i = 1, #vals do
  local at = vals[i]
  out[n + 1], out[n + 2] = raw[at], raw[at + 1]
  n = n + 2
end
if dirty then redis.call('HSET', key, 'm', pack(r)) end
if pa then expire(key, pa, now) end
return out
"""

# Commit of an existing session (today's arguments; no creation, clearing or profiles, which the rows do not use).
COMPACT_COMMIT = COMPACT_PRELUDE + r"""
local key, now, idle, token, fence = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[5], tonumber(ARGV[6])
local r = read(key)
if not r or not live(r, now) then return NOT_FOUND end
if token ~= '' and (fence ~= r[7] or r[9] ~= token) then return LOCK_LOST end
local w, nw, d, nd, i = {}, 0, {}, 0, 13
for _ = 1, tonumber(ARGV[12]) do
  if ARGV[i] == 's' then
    w[nw + 1], w[nw + 2] = 'v:' .. ARGV[i + 1], ARGV[i + 2]
    nw = nw + 2
  else
    nd = nd + 1
    d[nd] = 'v:' .. ARGV[i + 1]
  end
  i = i + 3
end
local released = ARGV[7] == '1' and token ~= '' and r[9] == token and r[7] == fence
if released then r[9], r[10] = false, false end
local before = r[6]
local pa = slide(r, now, idle)
w[nw + 1], w[nw + 2] = 'm', pack(r)
if nd > 0 then redis.call('HDEL', key, unpack(d)) end
redis.call('HSET', key, unpack(w))
if pa ~= before then expire(key, pa, now) end
if released then wake(ARGV[10], ARGV[11]) end
return COMMITTED
"""

COMPACT_RELEASE = COMPACT_PRELUDE + r"""
local key, token = KEYS[1], ARGV[1]
local r = read(key)
if not r or r[9] ~= token then return 0 end
r[9], r[10] = false, false
redis.call('HSET', key, 'm', pack(r))
wake(ARGV[2], ARGV[3])
return 1
"""

# The session bench/redis-scripts.py creates, written in the compact layout.
COMPACT_CREATE = r"""
local now, idle = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'm', cmsgpack.pack({ 2, ARGV[1], now, now + idle, now + 86400000, now + 2 * idle, 0, 1,
  false, false, false, false, { 'asm-bench', 1 }, {} }),
  'v:user', 'bench-user-0042', 'v:roles', 'reader,editor', 'v:counter', '\0\0\0\0', 'v:cart', ARGV[4])
redis.call('PEXPIRE', KEYS[1], 2 * idle)
return 1
"""


def as_library(s):
    """Today's Load and Commit as one Redis 7 function library: the helpers are defined once, when it loads. A library
    may not read the standard libraries' globals while it loads, so the helpers' captures are set on the first call;
    KEYS and ARGV, globals in a script, become upvalues set on every call."""
    load_helpers = ''.join(s[h] for h in ('Prelude', 'Authentication', 'LeaseClock', 'Writes', 'Mark', 'Replies'))
    commit_helpers = ''.join(s[h] for h in ('Prelude', 'LeaseClock', 'Writes', 'HandOver'))
    assert s['Load'].startswith(load_helpers) and s['Commit'].startswith(commit_helpers), 'the scripts changed shape'
    captures = ('local byte, find, match, sub, format, tonumber = string.byte, string.find, string.match, string.sub, '
                'string.format, tonumber')
    assert captures in s['Prelude'], 'the prelude changed shape'
    setup = ('KEYS, ARGV = keys, args\nif not byte then '
             + captures.replace('local ', '').replace('string.format, tonumber', 'string.format, _G.tonumber') + ' end\n')
    helpers = ''.join(s[h] for h in ('Prelude', 'Authentication', 'LeaseClock', 'Writes', 'Mark', 'HandOver', 'Replies'))
    return ('#!lua name=asm_levers\nlocal KEYS, ARGV\n'
            + helpers.replace(captures, 'local byte, find, match, sub, format, tonumber')
            + 'local function load(keys, args)\n' + setup + s['Load'][len(load_helpers):] + '\nend\n'
            + 'local function commit(keys, args)\n' + setup + s['Commit'][len(commit_helpers):] + '\nend\n'
            + "redis.register_function('load', load)\nredis.register_function('commit', commit)\n")


class Functions(rs.Version):
    """Today's scripts, Load and Commit called with FCALL."""

    def __init__(self, redis, s, key):
        super().__init__(redis, s, key)
        redis.call('FUNCTION', 'LOAD', 'REPLACE', as_library(s))

    def load(self, t, token=''):
        return ['FCALL', 'load'] + super().load(t, token)[2:]

    def commit(self, t, token='', fence=0):
        return ['FCALL', 'commit'] + super().commit(t, token, fence)[2:]


class Compact(rs.Version):
    """The compact-layout prototype."""

    def __init__(self, redis, s, key):
        # The base class creates the session with today's scripts; it is then written again in the compact layout.
        super().__init__(redis, s, key)
        self.sha.update((name, redis.call('SCRIPT', 'LOAD', text).decode())
                        for name, text in (('Load', COMPACT_LOAD), ('Commit', COMPACT_COMMIT), ('Release', COMPACT_RELEASE)))
        redis.call('DEL', key)
        self.clock = []  # the prototype's Commit takes the arguments from before the lock's waiting line
        assert redis.call('EVAL', COMPACT_CREATE, 1, key, self.secret, self.now, self.idle, bytes(range(200))) == 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-n', type=int, default=20000, help='calls per row')
    parser.add_argument('--slices', type=int, default=20, help='slices per row; the fastest is reported')
    args = parser.parse_args()
    source = rs.scripts(rs.sources_at(None))
    kinds = [('EVALSHA, today', rs.Version), ('FCALL, today', Functions), ('compact layout', Compact)]
    folder = tempfile.mkdtemp(prefix='asm-levers-')
    servers = []
    try:
        clients = rs.start_servers(folder, len(kinds), servers)
        versions = [kind(redis, source, 's:{bench}') for redis, (_, kind) in zip(clients, kinds)]
        table = rs.run(versions, args.n, args.slices, ['readonly', 'cycle', 'get', 'set'])
    finally:
        rs.stop_servers(folder, servers)
    print('Redis time per call (us; the fastest of %d slices of %d calls; a server per version, slices alternating),'
          ' and in brackets its ratio to the stock CacheGet on the same server:' % (args.slices, args.n // args.slices))
    print('%-34s' % '' + ''.join('%22s' % label for label, _ in kinds))
    for row, label in [('readonly', 'Load, ReadOnly'), ('lease', 'Load with a lease'),
                       ('commit', 'Commit with release'), ('get', 'stock CacheGet (sliding)'), ('set', 'stock CacheSet')]:
        cells = ''.join('%22s' % ('%.2f (%.2fx)' % (us, us / get)) for us, get in zip(table[row], table['get']))
        print('%-34s' % label + cells)


if __name__ == '__main__':
    sys.exit(main())
