#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, starting from its seed corpus in
# fuzz/corpus/<target>/ (copied to a scratch dir so the repo is never written). Targets run
# JOBS at a time (default: the number of cores); each run is single-threaded and time-bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
secs=${2:-15}
jobs=${JOBS:-$(nproc)}

# Runs one target; prints its last status line, or its log's tail and FAILED.
run_one() {
  local bin=$1 name work rc=0
  name=$(basename "$bin")
  work=$(mktemp -d)
  [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
  "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 "$work" >"$work.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -50 "$work.log"; echo "fuzz: $name FAILED"
  else
    echo "fuzz: $name for ${secs}s: $(grep -E "^Done|#[0-9]+.*DONE" "$work.log" | tail -1 || true)"
  fi
  rm -rf "$work" "$work.log"
  return "$rc"
}

shopt -s nullglob
bins=("$build"/*_fuzz)
pids=()
failed=0
for bin in "${bins[@]}"; do
  # Keep at most $jobs targets running; a finished one frees its slot.
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$bin" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
if [ "$failed" -ne 0 ]; then echo "fuzz: a target failed"; exit 1; fi
echo "fuzz: ${#bins[@]} targets ran clean"
