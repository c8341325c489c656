#!/usr/bin/env python3
"""Redis time per call of the Redis driver's session scripts, beside the stock cache script's (see docs/benchmarks.md).

    bench/redis-scripts.py                        the scripts of this checkout
    bench/redis-scripts.py --before REV           also the scripts of git revision REV, measured in the same run
    bench/redis-scripts.py -n 40000 --slices 40   more calls and slices (default 20000 in 20 slices)
    bench/redis-scripts.py --rows readonly,cycle   only these rows (readonly, lease, cycle, lockless, renew, get, set)

It starts a redis-server per version on a free loopback port (no persistence) and, on each, creates a session shaped like
bench/run.sh's (four values, about 250 bytes, one profile, an absolute expiry) and a 300-byte sliding cache entry.
Then it sends each script the arguments RedisDriver sends, pipelined, as EVALSHA: ReadOnly loads, loads with a lease,
Exclusive cycles (a load with a lease, then a commit of one value that releases it), lockless commits of one value,
renewals, and the stock session's CacheGet and CacheSet. Each row runs in slices that alternate between the versions;
per slice it reads INFO commandstats (evalsha usec per call), and it reports each version's fastest slice: the
machine is shared, and preemption only ever adds time. The scripts are read from src/Asm.Caching.Redis/
RedisScripts*.cs (their C# string constants). Stops the servers it started and removes their folder.
"""
import argparse
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = 'src/Asm.Caching.Redis'


def scripts(sources):
    """The string constants of RedisScripts*.cs: raw literals, "\\n" literals and other constants joined by +."""
    parts = {}
    for name, src in sources:
        for m in re.finditer(r'const string (\w+) =', src):
            i, expr = m.end(), []
            while True:
                while src[i] in ' \r\n\t+':
                    i += 1
                if src.startswith('"""', i):
                    end = src.index('"""', i + 3)
                    lines = src[i + 3:end].split('\n')
                    indent = lines[-1]
                    expr.append(('text', '\n'.join(l[len(indent):] for l in lines[1:-1])))
                    i = end + 3
                elif src[i] == '"':
                    end = src.index('"', i + 1)
                    expr.append(('text', src[i + 1:end].encode().decode('unicode_escape')))
                    i = end + 1
                elif src[i] == ';':
                    break
                else:
                    word = re.match(r'\w+', src[i:]).group(0)
                    expr.append(('ref', word))
                    i += len(word)
            parts[m.group(1)] = expr

    def value(name):
        return ''.join(v if kind == 'text' else value(v) for kind, v in parts[name])
    return {name: value(name) for name in parts}


def sources_at(rev):
    if rev is None:
        return [(p, open(p, encoding='utf-8').read()) for p in sorted(glob.glob(os.path.join(ROOT, SCRIPTS, 'RedisScripts*.cs')))]
    names = subprocess.run(['git', '-C', ROOT, 'ls-tree', '--name-only', rev, SCRIPTS + '/'], check=True,
                           capture_output=True, text=True).stdout.split()
    return [(n, subprocess.run(['git', '-C', ROOT, 'show', f'{rev}:{n}'], check=True, capture_output=True,
                               text=True).stdout) for n in names if os.path.basename(n).startswith('RedisScripts')]


class Redis:
    """A minimal RESP2 client with pipelining."""

    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port))
        self.buf = b''

    @staticmethod
    def encode(args):
        out = [b'*%d\r\n' % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b'$%d\r\n%s\r\n' % (len(a), a))
        return b''.join(out)

    def _line(self):
        while b'\r\n' not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b'+':
            return rest.decode()
        if kind == b'-':
            return RuntimeError(rest.decode())
        if kind == b':':
            return int(rest)
        if kind == b'$':
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        n = int(rest)
        return None if n < 0 else [self._reply() for _ in range(n)]

    def pipe(self, commands, batch=200):
        replies = []
        for i in range(0, len(commands), batch):
            chunk = commands[i:i + batch]
            self.sock.sendall(b''.join(self.encode(c) for c in chunk))
            replies += [self._reply() for _ in chunk]
        for r in replies:
            if isinstance(r, Exception):
                raise r
        return replies

    def call(self, *args):
        return self.pipe([list(args)])[0]

    def evalsha_usec(self):
        """Calls and usec of the scripts run since the last CONFIG RESETSTAT (EVALSHA, and FCALL for functions)."""
        calls = usec = 0
        for line in self.call('INFO', 'commandstats').decode().split('\r\n'):
            if line.startswith(('cmdstat_evalsha:', 'cmdstat_fcall:')):
                fields = dict(kv.split('=') for kv in line.split(':', 1)[1].split(','))
                calls, usec = calls + int(fields['calls']), usec + int(fields['usec'])
        return calls, usec


def slice_usec(redis, commands):
    """Redis time per script call (usec) of one pipelined slice, and its replies."""
    redis.call('CONFIG', 'RESETSTAT')
    replies = redis.pipe(commands)
    calls, usec = redis.evalsha_usec()
    return usec / calls, replies


class Version:
    """One version of the scripts, on a session of its own; builds each row's commands from its own state."""

    def __init__(self, redis, s, key):
        self.redis = redis
        self.sha = {name: redis.call('SCRIPT', 'LOAD', s[name]).decode()
                    for name in ('Load', 'Commit', 'Renew', 'Release', 'CacheGet', 'CacheSet')}
        # The session hash and its lock-waiter mark (see RedisScripts), as RedisDriver passes them.
        self.key, self.mark, self.entry = key, key.replace('s:{', 'w:{', 1), 'c:' + key
        # Since the lock's waiting line, Commit takes the lease clock override before the change count.
        self.clock = [''] if 'hand_over' in s['Commit'] else []
        self.idle, self.now = 20 * 60 * 1000, 1767225600000
        self.secret = 'currentSecret0000000000000'
        values = [('user', b'bench-user-0042'), ('roles', b'reader,editor'), ('counter', b'\0\0\0\0'), ('cart', bytes(range(200)))]
        create = ['EVALSHA', self.sha['Commit'], 2, key, self.mark, self.now, self.idle, self.secret, self.now + 24 * 3600 * 1000, '', 0,
                  '0', '0', 8, 'asm:released', 'id', *self.clock, len(values)]
        for name, v in values:
            create += ['s', name, v]
        assert redis.call(*create + ['asm-bench']) == 0
        self.blob = bytes(range(256)) + b'x' * 44
        redis.call('EVALSHA', self.sha['CacheSet'], 1, self.entry, self.blob, self.now, self.now + self.idle, '', self.idle)
        self.fence = 0

    def load(self, t, token=''):
        return ['EVALSHA', self.sha['Load'], 2, self.key, self.mark, self.secret, t, self.idle, token, 30000 if token else 0, '',
                self.idle // 16, 'bench']  # SessionRecord.SlideThreshold, the caller's party

    def commit(self, t, token='', fence=0):
        return ['EVALSHA', self.sha['Commit'], 2, self.key, self.mark, t, self.idle, '', '', token, fence, '1' if token else '0', '0', 8,
                'asm:released', 'id', *self.clock, 1, 's', 'counter', b'\0\0\0\1']

    def commands(self, row, n):
        """The n commands of a row (2n for the Exclusive cycle), from this version's clock and fence."""
        now, self.now = self.now, self.now + n
        if row == 'readonly':
            return [self.load(now + i) for i in range(n)]
        if row == 'lease':
            return [self.load(now + i, 'held') for i in range(n)]
        if row == 'cycle':
            cycle = []
            for i in range(n):
                self.fence += 1
                cycle += [self.load(now + i, f't{i}'), self.commit(now + i, f't{i}', self.fence)]
            return cycle
        if row == 'lockless':
            return [self.commit(now + i) for i in range(n)]
        if row == 'renew':
            self.fence = self.redis.call(*self.load(now, 'held'))[2]
            return [['EVALSHA', self.sha['Renew'], 1, self.key, now + i, 'held', self.fence, 30000, ''] for i in range(n)]
        if row == 'get':
            return [['EVALSHA', self.sha['CacheGet'], 1, self.entry, now + i, '1'] for i in range(n)]
        return [['EVALSHA', self.sha['CacheSet'], 1, self.entry, self.blob, now + i, now + i + self.idle, '', self.idle] for i in range(n)]

    def after(self, redis, row, replies):
        """Checks a row's outcome and sets up the next row."""
        if row == 'readonly':
            assert replies[-1][0] == 0, replies[-1]
        elif row == 'lease':
            self.fence = replies[-1][2]
            assert redis.call('EVALSHA', self.sha['Release'], 2, self.key, self.mark, 'held', 'asm:released', 'id', '') == 1
        elif row in ('cycle', 'lockless'):
            assert replies[-1] == 0, replies[-1]
        elif row == 'renew':
            assert replies[-1] == 1, replies[-1]


ROWS = [
    ('readonly', 'Load, ReadOnly'),
    ('lease', 'Load with a lease'),
    ('cycle', 'Exclusive cycle, per call: (load + commit) / 2'),
    ('lockless', 'Commit, lockless'),
    ('renew', 'Renew'),
    ('get', 'stock CacheGet (sliding)'),
    ('set', 'stock CacheSet'),
]


def run(versions, n, slices, only):
    """Every row for every version; the slices of one row alternate between the versions, so that a slow spell of
    the machine hits them alike. Returns {row: [fastest slice per version]}."""
    size = n // slices
    table = {}
    for row, _ in ROWS:
        if only and row not in only and not (row == 'lease' and 'cycle' in only):
            continue
        commands = [v.commands(row, n) for v in versions]
        step = 2 * size if row == 'cycle' else size
        best = [None] * len(versions)
        replies = [[] for _ in versions]
        for k in range(slices):
            for i, v in enumerate(versions):
                us, r = slice_usec(v.redis, commands[i][k * step:(k + 1) * step])
                replies[i] += r
                best[i] = us if best[i] is None else min(best[i], us)
        for i, v in enumerate(versions):
            v.after(v.redis, row, replies[i])
        table[row] = best
    # The commit with release, from the cycle's average and the lease load: 2 x cycle - lease load.
    if 'cycle' in table:
        table['commit'] = [2 * c - l for c, l in zip(table['cycle'], table['lease'])]
    return table


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_servers(folder, count, servers):
    """Starts count redis-servers (free loopback ports, no persistence, each in a subfolder of folder), appending each
    process to servers as it starts, so that stop_servers stops them however this ends; returns a client of each."""
    clients = []
    for i in range(count):
        port = free_port()
        os.mkdir(os.path.join(folder, str(i)))
        servers.append(subprocess.Popen(
            ['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
             '--dir', os.path.join(folder, str(i))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(200):
            try:
                redis = Redis(port)
                redis.call('PING')
                break
            except OSError:
                time.sleep(0.05)
        clients.append(redis)
    return clients


def stop_servers(folder, servers):
    for server in servers:
        server.terminate()
        server.wait()
    shutil.rmtree(folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-n', type=int, default=20000, help='calls per row')
    parser.add_argument('--slices', type=int, default=20, help='slices per row; the fastest is reported')
    parser.add_argument('--before', help='a git revision whose scripts are measured too, in the same run')
    parser.add_argument('--rows', help='only these rows, comma-separated: ' + ','.join(r for r, _ in ROWS))
    args = parser.parse_args()
    versions = [('this checkout', scripts(sources_at(None)))]
    if args.before:
        versions.insert(0, (args.before, scripts(sources_at(args.before))))
    folder = tempfile.mkdtemp(prefix='asm-scripts-')
    servers = []
    try:
        # A server per version: each has its own Lua interpreter, so one version's garbage is not collected on the
        # other's time.
        clients = start_servers(folder, len(versions), servers)
        table = run([Version(c, s, 's:{bench}') for c, (_, s) in zip(clients, versions)], args.n, args.slices,
                    args.rows.split(',') if args.rows else None)
    finally:
        stop_servers(folder, servers)
    print('Redis time per script call (us; the fastest of %d slices of %d calls; a server per version, slices alternating):'
          % (args.slices, args.n // args.slices))
    print('%-50s' % '' + ''.join('%16s' % label[:15] for label, _ in versions))
    for row, label in ROWS[:3] + [('commit', '  so Commit with release: 2 x cycle - lease load')] + ROWS[3:]:
        if row in table:
            print('%-50s' % label + ''.join('%16.2f' % us for us in table[row]))


if __name__ == '__main__':
    sys.exit(main())
