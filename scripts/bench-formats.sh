#!/usr/bin/env bash
# Decode speed of every served weight format against its own bandwidth ceiling: the 219.7M synth
# model (dim 1024, 12 layers, 16 heads, ff 2816, vocab 32000) in F32, quantized by round to
# nearest into each type, then `smelt bench -p 0 -n N` (tg t/s, the ceiling = read bandwidth ÷
# bytes per token, and the share reached).
#   bash scripts/bench-formats.sh [WORKDIR] [TYPES] [THREADS]
# TYPES: comma-separated (default: the ggml types, bf16 and the smelt-native 4-bit layouts);
# files are made once in WORKDIR (default: a temp dir). Environment: N (32), R (3). Needs
# build/smelt and jq.
set -euo pipefail
WORK=${1:-$(mktemp -d)}
TYPES=${2:-f16,bf16,q8_0,q6_K,q5_K,q5_1,q5_0,q4_K,q4_1,q4_0,iq4_nl,q3_K,q2_K,w8a8,i8_pc,i4s_g128,i4a_g128,nf4}
THREADS=${3:-1}
N=${N:-32}
R=${R:-3}
cd "$(dirname "$0")/.."
SMELT=$PWD/build/smelt
mkdir -p "$WORK"
base="$WORK/synth-220m-f32.gguf"
[ -f "$base" ] || "$SMELT" synth --dim 1024 --layers 12 --heads 16 --ff 2816 --vocab 32000 --type f32 -o "$base" >/dev/null
echo "model: 219.7M synth, round to nearest from F32; threads $THREADS; tg$N, $R repetitions; kernel path" \
  "$("$SMELT" sysinfo --json --mib 0 | jq -r '.kernel_path + "; transparent huge pages " + .transparent_huge_pages');" \
  "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| type | file MB | MB read per token | tg t/s | tg ceiling t/s | of ceiling |"
echo "|---|---:|---:|---:|---:|---:|"
IFS=, read -ra types <<<"$TYPES"
for t in "${types[@]}"; do
  f="$WORK/synth-220m-$t.gguf"
  [ -f "$f" ] || "$SMELT" quantize "$base" -o "$f" --type "$t" >/dev/null
  "$SMELT" bench "$f" -t "$THREADS" -p 0 -n "$N" -r "$R" --json |
    jq -r --arg t "$t" '.results[0] as $r |
      "| \($t) | \(.size_bytes / 1e6 * 10 | round / 10) | \(.bytes_per_token / 1e6 * 10 | round / 10) |" +
      " \($r.avg_ts * 100 | round / 100) ± \($r.stddev_ts * 100 | round / 100) |" +
      " \($r.ceiling_ts * 10 | round / 10) | \($r.percent_of_ceiling | round) % |"'
done
