#!/usr/bin/env bash
# Quantization speed: `smelt quantize` of a 219.7M-parameter F32 model (smelt synth: dim 1024,
# 12 layers, 16 heads, ff 2816, vocab 32000, ~880 MB) to each k-quant and Q4_0, on 1 and 2
# threads. Prints the wall time of the command (GNU time) and the encoding time it reports.
#   bash scripts/bench-quant-speed.sh [WORKDIR] [TYPES] [THREADS]
# The model and outputs live in WORKDIR (default $TMPDIR/smelt-bench-quant-speed) and are
# deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SMELT=build/smelt
WORK=${1:-${TMPDIR:-/tmp}/smelt-bench-quant-speed}
TYPES=${2:-"q4_0 q2_K q3_K q4_K q5_K q6_K"}
THREADS=${3:-"2 1"}
mkdir -p "$WORK"
trap 'rm -f "$WORK"/synth-220m-f32.gguf "$WORK"/out.gguf "$WORK"/time.txt' EXIT
MODEL="$WORK/synth-220m-f32.gguf"
"$SMELT" synth --dim 1024 --layers 12 --heads 16 --ff 2816 --vocab 32000 --type f32 -o "$MODEL" >/dev/null
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| type | threads | wall (s) | encoding (s, as printed) |"
echo "|---|---|---|---|"
for t in $TYPES; do
  for th in $THREADS; do
    out=$(/usr/bin/time -o "$WORK/time.txt" -f '%e' "$SMELT" quantize "$MODEL" -o "$WORK/out.gguf" --type "$t" -t "$th")
    enc=$(sed -n 's/.*quantized in \([0-9.]*\) s.*/\1/p' <<<"$out")
    printf '| %s | %s | %s | %s |\n' "$t" "$th" "$(cat "$WORK/time.txt")" "$enc"
  done
done
