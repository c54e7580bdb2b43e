#!/usr/bin/env bash
# Decode speed of the sparse weight types against the dense type of the same precision, on the
# 219.7M synth model (dim 1024, 12 layers, 16 heads, ff 2816, vocab 32000): 2:4 int8 (s24_q8)
# against q8_0 and 2:4 int4 (s24_q4) against q4_0 on the dense F32 model (the 2:4 types prune it
# by magnitude as they encode), and the 70 %-unstructured model (`smelt synth --sparsity 0.7`)
# in sp70_q8 against q8_0. The w8a8 pairs: the dense model pruned to 2:4 (`smelt prune --method
# magnitude --pattern 2:4`, head and embeddings too) in sp50_w8a8 against w8a8, and the 70 % model
# in sp70_w8a8 against w8a8 (int8 weights and per-token int8 activations on both sides), and 2:4
# int4 laid out for one 64-byte gather (s24_w4a8, per-token int8 activations) against q4_0; the
# unquantized pairs: the 2:4 model in sp50_f16 and the 70 % model in sp70_f16 against f16. Each
# sparse file comes twice: every matrix in the sparse type
# (`--type`), and only the block matrices with the embeddings and the head in the dense type
# (`--rules 'blk.*=TYPE' --type DENSE`). The dense and sparse files run alternately, A/B/A/B
# (ROUNDS times), with `smelt bench -t THREADS -p 0 -n N -r R`; one line per run: file, tg t/s.
#   bash scripts/bench-sparse.sh [WORKDIR] [THREADS]
# Environment: ROUNDS (2), N (64), R (3), PAIRS (the sparse types whose pairs run; all: "s24_q8
# s24_q4 s24_w4a8 sp70_q8 sp50_w8a8 sp70_w8a8 sp50_f16 sp70_f16"). Needs build/smelt and jq.
set -euo pipefail
WORK=${1:-$(mktemp -d)}
THREADS=${2:-1}
ROUNDS=${ROUNDS:-2}
N=${N:-64}
R=${R:-3}
PAIRS=${PAIRS:-s24_q8 s24_q4 s24_w4a8 sp70_q8 sp50_w8a8 sp70_w8a8 sp50_f16 sp70_f16}
cd "$(dirname "$0")/.."
SMELT=$PWD/build/smelt
mkdir -p "$WORK"
make_file() {  # make_file OUT SOURCE ARGS...
  local out=$1 src=$2
  shift 2
  [ -f "$out" ] || "$SMELT" quantize "$src" -o "$out" "$@" >/dev/null
}
dense="$WORK/synth-220m-f32.gguf"
sparse70="$WORK/synth-220m-sp70-f32.gguf"
[ -f "$dense" ] || "$SMELT" synth --dim 1024 --layers 12 --heads 16 --ff 2816 --vocab 32000 --type f32 -o "$dense" >/dev/null
[ -f "$sparse70" ] || "$SMELT" synth --dim 1024 --layers 12 --heads 16 --ff 2816 --vocab 32000 --type f32 \
  --sparsity 0.7 -o "$sparse70" >/dev/null
make_file "$WORK/q8_0.gguf" "$dense" --type q8_0
make_file "$WORK/q4_0.gguf" "$dense" --type q4_0
make_file "$WORK/s24_q8.gguf" "$dense" --type s24_q8
make_file "$WORK/s24_q8-blk.gguf" "$dense" --rules 'blk.*=s24_q8' --type q8_0
make_file "$WORK/s24_q4.gguf" "$dense" --type s24_q4
make_file "$WORK/s24_q4-blk.gguf" "$dense" --rules 'blk.*=s24_q4' --type q4_0
make_file "$WORK/s24_w4a8.gguf" "$dense" --type s24_w4a8
make_file "$WORK/s24_w4a8-blk.gguf" "$dense" --rules 'blk.*=s24_w4a8' --type q4_0
make_file "$WORK/sp70-q8_0.gguf" "$sparse70" --type q8_0
make_file "$WORK/sp70_q8.gguf" "$sparse70" --type sp70_q8
make_file "$WORK/sp70_q8-blk.gguf" "$sparse70" --rules 'blk.*=sp70_q8' --type q8_0
dense24="$WORK/synth-220m-s24-f32.gguf"
[ -f "$dense24" ] || "$SMELT" prune "$dense" -o "$dense24" --method magnitude --pattern 2:4 --prune-head \
  --prune-embeddings >/dev/null
make_file "$WORK/s24-w8a8.gguf" "$dense24" --type w8a8
make_file "$WORK/sp50_w8a8.gguf" "$dense24" --type sp50_w8a8
make_file "$WORK/sp50_w8a8-blk.gguf" "$dense24" --rules 'blk.*=sp50_w8a8' --type w8a8
make_file "$WORK/sp70-w8a8.gguf" "$sparse70" --type w8a8
make_file "$WORK/sp70_w8a8.gguf" "$sparse70" --type sp70_w8a8
make_file "$WORK/sp70_w8a8-blk.gguf" "$sparse70" --rules 'blk.*=sp70_w8a8' --type w8a8
want() { case " $PAIRS " in *" $1 "*) return 0 ;; esac; return 1; }
if want sp50_f16; then
  make_file "$WORK/s24-f16.gguf" "$dense24" --type f16
  make_file "$WORK/sp50_f16.gguf" "$dense24" --type sp50_f16
  make_file "$WORK/sp50_f16-blk.gguf" "$dense24" --rules 'blk.*=sp50_f16' --type f16
fi
if want sp70_f16; then
  make_file "$WORK/sp70-f16.gguf" "$sparse70" --type f16
  make_file "$WORK/sp70_f16.gguf" "$sparse70" --type sp70_f16
  make_file "$WORK/sp70_f16-blk.gguf" "$sparse70" --rules 'blk.*=sp70_f16' --type f16
fi
echo "threads $THREADS; tg$N, $R repetitions per run; kernel path $("$SMELT" sysinfo --json --mib 0 | jq -r .kernel_path);" \
  "prefetch $("$SMELT" sysinfo --json --mib 0 | jq -r .prefetch_distance) B ahead;" \
  "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
run() {
  "$SMELT" bench "$WORK/$1" -t "$THREADS" -p 0 -n "$N" -r "$R" --json |
    jq -r --arg f "$1" '.results[0] as $r | "\($f) \(.size_bytes / 1e6 * 10 | round / 10) MB: \($r.avg_ts * 100 | round / 100) ± \($r.stddev_ts * 100 | round / 100) t/s"'
}
for pair in "q8_0 s24_q8 s24_q8-blk" "q4_0 s24_q4 s24_q4-blk" "q4_0 s24_w4a8 s24_w4a8-blk" \
  "sp70-q8_0 sp70_q8 sp70_q8-blk" \
  "s24-w8a8 sp50_w8a8 sp50_w8a8-blk" "sp70-w8a8 sp70_w8a8 sp70_w8a8-blk" "s24-f16 sp50_f16 sp50_f16-blk" \
  "sp70-f16 sp70_f16 sp70_f16-blk"; do
  read -ra files <<<"$pair"
  case " $PAIRS " in *" ${files[1]} "*) ;; *) continue ;; esac
  for ((i = 0; i < ROUNDS; ++i)); do
    for f in "${files[@]}"; do run "$f.gguf"; done
  done
done
