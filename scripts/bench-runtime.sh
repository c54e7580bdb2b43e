#!/usr/bin/env bash
# Runtime speed side by side: `smelt bench` and llama.cpp on the same GGUF file with the same
# threads, one after the other, llama-bench style: pp = one batch of P tokens into an empty cache,
# tg = N tokens decoded one at a time.
#   bash scripts/bench-runtime.sh MODEL.gguf [THREADS]     (THREADS: e.g. 1,2; default 1,2)
# llama.cpp runs as `../shared/peer/llamacpp bench` (its prebuilt CPU libraries through
# node-llama-cpp, whose own threads compete with llama.cpp's at 2 threads), or with PEER_TOOL=native
# as llama.cpp's own llama-bench built for this CPU (`../shared/peer/llamacpp build-native` once;
# LLAMA_BENCH=PATH runs another build of it, its libraries beside it).
# Environment: P (128), N (64), R repetitions (3), MIB bandwidth buffer (512), PEER_TOOL (node).
# Needs build/smelt and jq. Prints the setup and one markdown table with both and the ratio
# smelt/llama.cpp.
set -euo pipefail
MODEL=$(realpath "${1:?usage: bench-runtime.sh MODEL.gguf [THREADS]}")
THREADS=${2:-1,2}
P=${P:-128}
N=${N:-64}
R=${R:-3}
MIB=${MIB:-512}
PEER_TOOL=${PEER_TOOL:-node}
cd "$(dirname "$0")/.."
SMELT=build/smelt
PEER=../shared/peer/llamacpp

sys=$("$SMELT" sysinfo --json --mib 0)
echo "model: $(basename "$MODEL"), $(stat -c %s "$MODEL") bytes"
echo "cpu: $(jq -r .cpu <<<"$sys"), $(jq -r .logical_cores <<<"$sys") logical cores; smelt kernel path:" \
  "$(jq -r .kernel_path <<<"$sys"), prefetch $(jq -r .prefetch_distance <<<"$sys") B ahead, OpenBLAS core" \
  "$(jq -r .openblas.core <<<"$sys"), transparent huge pages $(jq -r .transparent_huge_pages <<<"$sys")"
echo "threads: $THREADS; pp$P, tg$N, $R repetitions after one warm-up; t/s as mean ± sd" \
  "(smelt and llama-bench: sample sd; llama.cpp through node: population sd)"
if [ -n "${LLAMA_BENCH:-}" ]; then
  llama_bench() { LD_LIBRARY_PATH="$(dirname "$LLAMA_BENCH")" "$LLAMA_BENCH" "$@"; }
else
  llama_bench() { "$PEER" native llama-bench "$@"; }
fi
if [ "$PEER_TOOL" = native ]; then
  echo "llama.cpp: llama-bench (llama.cpp's own tool${LLAMA_BENCH:+, $LLAMA_BENCH}), built for this CPU"
else
  echo "llama.cpp: $PEER bench (node-llama-cpp's prebuilt CPU build)"
fi
echo "load average before (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
echo

rows=()
IFS=, read -ra counts <<<"$THREADS"
for t in "${counts[@]}"; do
  ours=$("$SMELT" bench "$MODEL" -t "$t" -p "$P" -n "$N" -r "$R" --mib "$MIB" --json)
  if [ "$PEER_TOOL" = native ]; then  # llama-bench's JSON: one entry per test, in the node form's shape
    peer=$(llama_bench -m "$MODEL" -t "$t" -p "$P" -n "$N" -r "$R" -o json 2>/dev/null |
      jq -c '{pp_tok_s: (map(select(.n_gen == 0))[0] // {} | {mean: .avg_ts, std: .stddev_ts}),
              tg_tok_s: (map(select(.n_prompt == 0))[0] // {} | {mean: .avg_ts, std: .stddev_ts})}')
  else
    peer=$("$PEER" bench "$MODEL" "$t" "$P" "$N" "$R" | tail -n 1)
  fi
  for kind in pp tg; do
    count=$([ $kind = pp ] && echo "$P" || echo "$N")
    [ "$count" -gt 0 ] || continue
    # smelt: mean, sd, tg ceiling (or -); llama.cpp: mean, sd.
    read -r m s c < <(jq -r --arg test "$kind$count" \
      '.results[] | select(.test == $test) | "\(.avg_ts) \(.stddev_ts) \(.ceiling_ts // "-")"' <<<"$ours")
    read -r pm ps < <(jq -r --arg k "${kind}_tok_s" '.[$k] | "\(.mean) \(.std)"' <<<"$peer")
    rows+=("$(awk -v test="$kind$count" -v t="$t" -v m="$m" -v s="$s" -v c="$c" -v pm="$pm" -v ps="$ps" 'BEGIN {
      ceil = (c == "-") ? "" : sprintf("%.1f", c)
      printf "| %s | %s | %.2f ± %.2f | %.2f ± %.2f | %.3f | %s |", test, t, m, s, pm, ps, m / pm, ceil }')")
  done
done
echo "| test | threads | smelt t/s | llama.cpp t/s | smelt/llama.cpp | smelt tg ceiling t/s |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
