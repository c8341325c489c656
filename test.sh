#!/usr/bin/env bash
# Runs every test of Asm against real servers, installing what the tests need when it is missing
# (redis-server and redis-sentinel for the Redis driver, Chromium for the demo's browser test). Prints, last,
# "N passed, N failed" summed over all test projects, and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]}..."
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build Asm.sln -c Release -warnaserror -nologo -clp:ErrorsOnly

passed=0 failed=0 skipped=0 status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for project in test/*.Tests/*.Tests.csproj; do
  echo "== $project"
  if ! dotnet test "$project" -c Release --no-build --nologo 2>&1 | tee "$log"; then
    status=1
  fi
  line=$(grep -E '(Passed|Failed)! +- Failed: ' "$log" | tail -n 1 || true)
  if [ -z "$line" ]; then
    echo "No test summary from $project" >&2
    status=1
    continue
  fi
  f=$(sed -E 's/.*Failed: +([0-9]+).*/\1/' <<<"$line")
  p=$(sed -E 's/.*Passed: +([0-9]+).*/\1/' <<<"$line")
  s=$(sed -E 's/.*Skipped: +([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done

[ "$failed" -eq 0 ] || status=1
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
exit $status
