#!/usr/bin/env bash
# Decode speed of the sparse weight types against the dense type of the same precision, on the
# 219.7M synth model (dim 1024, 12 layers, 16 heads, ff 2816, vocab 32000): 2:4 int8 (s24_q8)
# against q8_0 and 2:4 int4 (s24_q4) against q4_0 on the dense F32 model (the 2:4 types prune it
# by magnitude as they encode), and the 70 %-unstructured model (`smelt synth --sparsity 0.7`)
# in sp70_q8 against q8_0. The w8a8 pairs: the dense model pruned to 2:4 (`smelt prune --method
# magnitude --pattern 2:4`, head and embeddings too) in sp50_w8a8 against w8a8, and the 70 % model
# in sp70_w8a8 against w8a8 (int8 weights and per-token int8 activations on both sides), and 2:4
# int4 laid out for one 64-byte gather (s24_w4a8, per-token int8 activations) against q4_0; the
# unquantized pairs: the 2:4 model in sp50_f16 and the 70 % model in sp70_f16 against f16; and
# the 70 % model in sp70_w4a8 (int4 codes, per-token int8 activations) against q4_0. Each
# sparse file comes twice: every matrix in the sparse type
# (`--type`), and only the block matrices with the embeddings and the head in the dense type
# (`--rules 'blk.*=TYPE' --type DENSE`). The dense and sparse files run alternately, A/B/A/B
# (ROUNDS times), with `smelt bench -t THREADS -p 0 -n N -r R`; one line per run: file, tg t/s.
#   bash scripts/bench-sparse.sh [WORKDIR] [THREADS]
# Environment: ROUNDS (2), N (64), R (3), PAIRS (the sparse types whose pairs run; all: "s24_q8
# s24_q4 s24_w4a8 sp70_q8 sp50_w8a8 sp70_w8a8 sp50_f16 sp70_f16 sp70_w4a8"), MODEL (220m, or 1b
# for a 1.36B model, dim 2048, 24 layers, ff 5632, whose weights do not stay in a cache; only the
# files of the pairs asked for are made). Needs build/smelt and jq.
set -euo pipefail
WORK=${1:-$(mktemp -d)}
THREADS=${2:-1}
ROUNDS=${ROUNDS:-2}
N=${N:-64}
R=${R:-3}
PAIRS=${PAIRS:-s24_q8 s24_q4 s24_w4a8 sp70_q8 sp50_w8a8 sp70_w8a8 sp50_f16 sp70_f16 sp70_w4a8}
MODEL=${MODEL:-220m}
case "$MODEL" in
  220m) SHAPE=(--dim 1024 --layers 12 --heads 16 --ff 2816 --vocab 32000) ;;
  1b) SHAPE=(--dim 2048 --layers 24 --heads 16 --ff 5632 --vocab 32000) ;;
  *) echo "MODEL: 220m or 1b, not $MODEL" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
SMELT=$PWD/build/smelt
mkdir -p "$WORK"
WORK="$WORK/$MODEL"  # each model's files apart
mkdir -p "$WORK"
make_file() {  # make_file OUT SOURCE ARGS...
  local out=$1 src=$2
  shift 2
  [ -f "$out" ] || "$SMELT" quantize "$src" -o "$out" "$@" >/dev/null
}
want() { case " $PAIRS " in *" $1 "*) return 0 ;; esac; return 1; }
dense="$WORK/synth-f32.gguf"
sparse70="$WORK/synth-sp70-f32.gguf"
dense24="$WORK/synth-s24-f32.gguf"
if want s24_q8 || want s24_q4 || want s24_w4a8 || want sp50_w8a8 || want sp50_f16; then
  [ -f "$dense" ] || "$SMELT" synth "${SHAPE[@]}" --type f32 -o "$dense" >/dev/null
fi
if want sp70_q8 || want sp70_w8a8 || want sp70_f16 || want sp70_w4a8; then
  [ -f "$sparse70" ] || "$SMELT" synth "${SHAPE[@]}" --type f32 --sparsity 0.7 -o "$sparse70" >/dev/null
fi
# make_pair SOURCE DENSE_FILE DENSE_TYPE SPARSE_TYPE: the dense file, the sparse file with every
# matrix in SPARSE_TYPE, and the -blk file with only the block matrices in it.
make_pair() {
  make_file "$WORK/$2.gguf" "$1" --type "$3"
  make_file "$WORK/$4.gguf" "$1" --type "$4"
  make_file "$WORK/$4-blk.gguf" "$1" --rules "blk.*=$4" --type "$3"
}
if want s24_q8; then make_pair "$dense" q8_0 q8_0 s24_q8; fi
if want s24_q4; then make_pair "$dense" q4_0 q4_0 s24_q4; fi
if want s24_w4a8; then make_pair "$dense" q4_0 q4_0 s24_w4a8; fi
if want sp70_q8; then make_pair "$sparse70" sp70-q8_0 q8_0 sp70_q8; fi
if want sp50_w8a8 || want sp50_f16; then
  [ -f "$dense24" ] || "$SMELT" prune "$dense" -o "$dense24" --method magnitude --pattern 2:4 --prune-head \
    --prune-embeddings >/dev/null
fi
if want sp50_w8a8; then make_pair "$dense24" s24-w8a8 w8a8 sp50_w8a8; fi
if want sp70_w8a8; then make_pair "$sparse70" sp70-w8a8 w8a8 sp70_w8a8; fi
if want sp70_w4a8; then make_pair "$sparse70" sp70-q4_0 q4_0 sp70_w4a8; fi
if want sp50_f16; then make_pair "$dense24" s24-f16 f16 sp50_f16; fi
if want sp70_f16; then make_pair "$sparse70" sp70-f16 f16 sp70_f16; fi
echo "model $MODEL; threads $THREADS; tg$N, $R repetitions per run; kernel path $("$SMELT" sysinfo --json --mib 0 | jq -r .kernel_path);" \
  "prefetch $("$SMELT" sysinfo --json --mib 0 | jq -r .prefetch_distance) B ahead;" \
  "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
run() {
  "$SMELT" bench "$WORK/$1" -t "$THREADS" -p 0 -n "$N" -r "$R" --json |
    jq -r --arg f "$1" '.results[0] as $r | "\($f) \(.size_bytes / 1e6 * 10 | round / 10) MB: \($r.avg_ts * 100 | round / 100) ± \($r.stddev_ts * 100 | round / 100) t/s"'
}
for pair in "q8_0 s24_q8 s24_q8-blk" "q4_0 s24_q4 s24_q4-blk" "q4_0 s24_w4a8 s24_w4a8-blk" \
  "sp70-q8_0 sp70_q8 sp70_q8-blk" \
  "s24-w8a8 sp50_w8a8 sp50_w8a8-blk" "sp70-w8a8 sp70_w8a8 sp70_w8a8-blk" "s24-f16 sp50_f16 sp50_f16-blk" \
  "sp70-f16 sp70_f16 sp70_f16-blk" "sp70-q4_0 sp70_w4a8 sp70_w4a8-blk"; do
  read -ra files <<<"$pair"
  case " $PAIRS " in *" ${files[1]} "*) ;; *) continue ;; esac
  for ((i = 0; i < ROUNDS; ++i)); do
    for f in "${files[@]}"; do run "$f.gguf"; done
  done
done
