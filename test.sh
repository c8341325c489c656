#!/usr/bin/env bash
# Runs every test of Asm against real servers, installing what the tests need when it is missing
# (redis-server and redis-sentinel for the Redis driver, Chromium for the demo's browser test). Prints, last,
# "N passed, N failed" summed over all test projects, and exits non-zero on any failure, or when the tests left a
# process (redis-server, redis-sentinel, a child app) or a temporary folder behind.
set -euo pipefail
cd "$(dirname "$0")"
# Folders the tests make themselves (a session directory made "by hand") get the usual permissions whatever the
# caller's umask: the filesystem driver refuses a directory that other users may write to.
umask 022

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v strace >/dev/null 2>&1 || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]}..."
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# The tests run with a temp folder of their own and a mark in their environment, which every process they start
# inherits: whatever of theirs is left at the end (a folder, a process) is found by it. The toolchain (dotnet build
# and test, MSBuild; the dotnet command leaves two empty folders in its temp folder on every call) gets a temp folder of
# its own. Runs of this script killed earlier (their lock is free) leave their folder to the next run.
for stale in /tmp/asm-run.*; do
  [ -d "$stale" ] || continue
  if [ -e "$stale/run.lock" ] && flock -n "$stale/run.lock" true 2>/dev/null; then
    grep -F " $stale/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$stale"
  fi
done
run_tmp=$(mktemp -d /tmp/asm-run.XXXXXX)
exec 9>"$run_tmp/run.lock"
flock 9
run_id=$(basename "$run_tmp")
log="$run_tmp/test.log"
trap 'rm -rf "$run_tmp"' EXIT
mkdir "$run_tmp/tmp" "$run_tmp/toolchain"
export MSBUILDDISABLENODEREUSE=1
TMPDIR="$run_tmp/toolchain" dotnet build Asm.sln -c Release -warnaserror -nologo -clp:ErrorsOnly
# For the test processes only (not dotnet test itself); no runtime diagnostics pipes, which a killed child would leave.
test_environment=(-- "RunConfiguration.EnvironmentVariables.TMPDIR=$run_tmp/tmp"
  "RunConfiguration.EnvironmentVariables.ASM_TEST_RUN=$run_id"
  "RunConfiguration.EnvironmentVariables.DOTNET_EnableDiagnostics=0")

passed=0 failed=0 skipped=0 status=0
for project in test/*.Tests/*.Tests.csproj; do
  echo "== $project"
  if ! TMPDIR="$run_tmp/toolchain" dotnet test "$project" -c Release --no-build --nologo "${test_environment[@]}" 2>&1 | tee "$log"; then
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

# Processes of this run still alive (waited for a little: a server killed at exit takes a moment to go).
leftover_processes() {
  for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}; pid=${pid%/environ}
    if { tr '\0' '\n' <"$environ" | grep -qx "ASM_TEST_RUN=$run_id"; } 2>/dev/null; then
      echo "$pid $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null)"
    fi
  done
}
for _ in $(seq 1 20); do
  [ -z "$(leftover_processes)" ] && break
  sleep 0.5
done
left=$(leftover_processes)
if [ -n "$left" ]; then
  echo "The tests left processes running:" >&2
  echo "$left" >&2
  status=1
fi
# Folders and files the tests left in their temp folder.
left=$(find "$run_tmp/tmp" -mindepth 1 -maxdepth 1 2>/dev/null || true)
if [ -n "$left" ]; then
  echo "The tests left temporary files or folders:" >&2
  echo "$left" >&2
  status=1
fi
if grep -qF " $run_tmp/" /proc/self/mountinfo; then
  echo "The tests left file systems mounted under $run_tmp" >&2
  status=1
fi

[ "$failed" -eq 0 ] || status=1
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
exit $status
