#!/usr/bin/env bash
# Bytes allocated per request on Kestrel, by the whole app (Kestrel, the session, the endpoint), for the stock session
# and Asm over in-memory storage: BenchmarkDotNet's SessionPipelineBenchmarks measures the session alone on a
# DefaultHttpContext, which Kestrel's pooling of HttpContexts and its OnStarting callbacks do not touch. One session,
# its cookie on every request, one keep-alive connection (so that Exclusive requests never queue for its lock); the
# app's GC.GetTotalAllocatedBytes before and after a wrk run, divided by its requests (a handful of other allocations,
# the two reads of the count among them, are in the figure).
#   bench/kestrel-allocations.sh            (about a minute; prints "provider path bytes/request")
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
dotnet build bench/Asm.Benchmarks.App -c Release -nologo -clp:ErrorsOnly >/dev/null
app=bench/Asm.Benchmarks.App/bin/Release/net10.0/Asm.Benchmarks.App
out=$(mktemp)
pid=
trap 'rm -f "$out"; [[ -z $pid ]] || kill "$pid" 2>/dev/null || true' EXIT
for provider in stock-memory asm-memory; do
  "$app" --provider "$provider" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do grep -q LISTENING "$out" && break; sleep 0.2; done
  url=$(awk '/LISTENING/ { print $2; exit }' "$out")
  cookie=$(curl -sS -o /dev/null -D - -A bench "$url/seed" | tr -d '\r' | awk -F'[ ;]' 'tolower($1) == "set-cookie:" { print $2; exit }')
  for path in /readonly/read /exclusive/read /exclusive/write; do
    wrk -t1 -c1 -d2s -H "Cookie: $cookie" -H "User-Agent: bench" "$url$path" >/dev/null
    before=$(curl -sS "$url/allocated")
    requests=$(wrk -t1 -c1 -d5s -H "Cookie: $cookie" -H "User-Agent: bench" "$url$path" | awk '/requests in/ { print $1 }')
    after=$(curl -sS "$url/allocated")
    echo "$provider $path $(( (after - before) / requests ))"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
