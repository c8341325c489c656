#!/usr/bin/env bash
# The soak run of docs/reliability.md: mixed traffic (ReadOnly, Exclusive, Lockless, regenerate, destroy) over
# 20,000 sessions on each driver, through real HTTP on loopback, checking at the end that no acknowledged write was
# lost, and sampling memory (and Redis used_memory) over time. Not a CI test: a run takes SOAK_SECONDS per driver.
#
#   bench/soak.sh                                   10 minutes per driver: in-memory, filesystem, Redis
#   SOAK_SECONDS=120 SOAK_DRIVERS=redis bench/soak.sh
#
# Environment:
#   SOAK_SECONDS      how long each driver runs (default 600)
#   SOAK_DRIVERS      which drivers, space-separated (default "inmemory filesystem redis")
#   SOAK_SESSIONS     sessions the load goes round (default 20000)
#   SOAK_CONCURRENCY  concurrent clients (default 32)
#   SOAK_SAMPLE       seconds between memory samples (default 10)
#   SOAK_IDLE         the sessions' idle timeout in seconds (default 180: tombstones expire within the run, so that
#                     memory after the first few minutes shows whether anything leaks)
# Exits non-zero when a driver saw an error or lost an update. Stops everything it started, and removes its folder.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${SOAK_SECONDS:-600}
drivers=${SOAK_DRIVERS:-inmemory filesystem redis}
sessions=${SOAK_SESSIONS:-20000}
concurrency=${SOAK_CONCURRENCY:-32}
sample=${SOAK_SAMPLE:-10}
idle=${SOAK_IDLE:-180}

command -v redis-server >/dev/null 2>&1 || { echo "redis-server is missing: apt-get install -y redis-server" >&2; exit 1; }
work=$(mktemp -d -p /var/tmp asm-soak.XXXXXXXX)
redis_pid=""
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

dotnet build "$root/bench/soak/Asm.Soak.csproj" -c Release -nologo -clp:ErrorsOnly >/dev/null
soak="$root/bench/soak/bin/Release/net10.0/Asm.Soak"

status=0
for driver in $drivers; do
  arguments=(--driver "$driver" --seconds "$seconds" --sessions "$sessions" --concurrency "$concurrency" --sample "$sample" --idle "$idle")
  case "$driver" in
    filesystem)
      arguments+=(--directory "$work/sessions")
      ;;
    redis)
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      mkdir -p "$work/redis"
      redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work/redis" --logfile redis.log &
      redis_pid=$!
      until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
      arguments+=(--redis "127.0.0.1:$port")
      ;;
  esac
  "$soak" "${arguments[@]}" || status=1
  echo
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=""
  fi
done
exit $status
