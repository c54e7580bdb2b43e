#!/usr/bin/env bash
# Prompts and decoding with a filled KV cache, side by side: `smelt bench -d DEPTH` and llama.cpp
# (through the node-llama-cpp install of ../shared/peer/llamacpp, scripts/peer-depth.mjs) on the
# same GGUF file, the same threads, the same KV cache type, one after the other: the cache is
# filled once with DEPTH tokens (untimed), then each repetition evaluates P tokens in one batch
# (pp) and, from DEPTH again, decodes N tokens one at a time (tg), R repetitions.
#   bash scripts/bench-depth.sh MODEL.gguf [THREADS] [DEPTHS]   (defaults: 1, 1024)
# Environment: P (0: no pp), N (32), R (3), KV (f32,f16: the cache types both engines run). Needs
# build/smelt, node and jq. Prints the setup and one markdown table with both and the ratio.
set -euo pipefail
MODEL=$(realpath "${1:?usage: bench-depth.sh MODEL.gguf [THREADS] [DEPTHS]}")
THREADS=${2:-1}
DEPTHS=${3:-1024}
P=${P:-0}
N=${N:-32}
R=${R:-3}
KV=${KV:-f32,f16}
cd "$(dirname "$0")/.."
SMELT=build/smelt
PEER_DIR=${SMELT_PEER_DIR:-/tmp/smelt-peer}
../shared/peer/llamacpp setup >/dev/null
cp scripts/peer-depth.mjs "$PEER_DIR"/

sys=$("$SMELT" sysinfo --json --mib 0)
echo "model: $(basename "$MODEL"), $(stat -c %s "$MODEL") bytes"
echo "cpu: $(jq -r .cpu <<<"$sys"); smelt kernel path: $(jq -r .kernel_path <<<"$sys")"
echo "pp$P and tg$N after DEPTH cached tokens, $R repetitions after one warm-up; t/s as mean ± sd;" \
  "llama.cpp without flash attention (node-llama-cpp's prebuilt CPU build)"
echo "load average before (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| test | kv | threads | smelt t/s | llama.cpp t/s | smelt/llama.cpp |"
echo "|---|---|---:|---:|---:|---:|"
IFS=, read -ra depths <<<"$DEPTHS"
IFS=, read -ra kvs <<<"$KV"
IFS=, read -ra counts <<<"$THREADS"
for d in "${depths[@]}"; do
  for kv in "${kvs[@]}"; do
    for t in "${counts[@]}"; do
      ours=$("$SMELT" bench "$MODEL" -t "$t" -p "$P" -n "$N" -d "$d" -r "$R" --mib 0 --kv "$kv" --json)
      peer=$(cd "$PEER_DIR" && node peer-depth.mjs "$MODEL" "$t" "$d" "$N" "$R" "${kv^^}" 0 "$P" | tail -n 1)
      for kind in pp tg; do
        count=$([ $kind = pp ] && echo "$P" || echo "$N")
        [ "$count" -gt 0 ] || continue
        test="$kind$count @ d$d"
        [ "$d" -gt 0 ] || test="$kind$count"
        read -r m s < <(jq -r --arg test "$test" '.results[] | select(.test == $test) | "\(.avg_ts) \(.stddev_ts)"' <<<"$ours")
        read -r pm ps < <(jq -r --arg k "${kind}_tok_s" '.[$k] | "\(.mean) \(.std)"' <<<"$peer")
        awk -v test="$test" -v kv="$kv" -v t="$t" -v m="$m" -v s="$s" -v pm="$pm" -v ps="$ps" \
          'BEGIN { printf "| %s | %s | %s | %.2f ± %.2f | %.2f ± %.2f | %.3f |\n", test, kv, t, m, s, pm, ps, m / pm }'
      done
    done
  done
done
