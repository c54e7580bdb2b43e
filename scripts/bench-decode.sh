#!/usr/bin/env bash
# Decode speed on a 219.7M-parameter random Llama (dim 1024, 12 layers, 16 heads, ff 2816,
# vocab 32000) as Q4_0, Q8_0 and Q4_K: `smelt run -n 32 -t 1` (its tok/s line) twice per
# binary, then the llama.cpp peer's `bench` (1 thread, pp128, tg32, 3 repetitions) on the same file.
#   bash scripts/bench-decode.sh [OTHER_SMELT] [WORKDIR]
# OTHER_SMELT: a second smelt binary (e.g. a build of an earlier commit) measured beside build/smelt.
set -euo pipefail
cd "$(dirname "$0")/.."
SMELT=build/smelt
OTHER=${1:-}
WORK=${2:-${TMPDIR:-/tmp}/smelt-bench-decode}
PEER=../shared/peer/llamacpp
mkdir -p "$WORK"
base="$WORK/synth-220m-q8_0.gguf"
[ -f "$base" ] || "$SMELT" synth --dim 1024 --layers 12 --heads 16 --ff 2816 --vocab 32000 --type q8_0 -o "$base" >/dev/null
[ -f "$WORK/synth-220m-q4_0.gguf" ] ||
  "$SMELT" synth --dim 1024 --layers 12 --heads 16 --ff 2816 --vocab 32000 --type q4_0 -o "$WORK/synth-220m-q4_0.gguf" >/dev/null
[ -f "$WORK/synth-220m-q4_K.gguf" ] || "$SMELT" quantize "$base" -o "$WORK/synth-220m-q4_K.gguf" --type q4_K >/dev/null
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), 1 thread; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in q4_0 q8_0 q4_K; do
  m="$WORK/synth-220m-$t.gguf"
  for rep in 1 2; do
    [ -n "$OTHER" ] && echo "$t other: $("$OTHER" run "$m" -p "Once upon a time" -n 32 -t 1 2>&1 >/dev/null | tail -1)"
    echo "$t smelt: $("$SMELT" run "$m" -p "Once upon a time" -n 32 -t 1 2>&1 >/dev/null | tail -1)"
  done
  [ -x "$PEER" ] && echo "$t llama.cpp: $("$PEER" bench "$m" 1 128 32 3 2>/dev/null | tail -1)"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
