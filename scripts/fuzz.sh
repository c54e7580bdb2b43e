#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, starting from its seed corpus in
# fuzz/corpus/<target>/ (copied to a scratch dir so the repo is never written).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
secs=${2:-15}
shopt -s nullglob
found=0
for bin in "$build"/*_fuzz; do
  name=$(basename "$bin")
  work=$(mktemp -d)
  [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 "$work" >"$work.log" 2>&1 || {
    tail -50 "$work.log"; echo "fuzz: $name FAILED"; exit 1; }
  grep -E "^Done|#[0-9]+.*DONE" "$work.log" | tail -1 || true
  rm -rf "$work" "$work.log"
  found=$((found + 1))
done
echo "fuzz: $found targets ran clean"
