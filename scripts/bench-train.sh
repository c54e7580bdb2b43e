#!/usr/bin/env bash
# Training speed: `smelt train` against PyTorch eager on the CPU (scripts/bench-train-torch.py),
# the same Llama shape, batch, sequence length and threads, fp32, AdamW with clipping. Runs the
# two alternately ROUNDS times per thread count and prints each run's tokens/s and the medians.
#   bash scripts/bench-train.sh [SHAPE] [THREADS...]
# SHAPE: stories260K (dim 64, 5 layers, 8 heads, 4 kv heads, ff 172, vocab 512; seq 256, batch 8)
#        or d256 (dim 256, 6 layers, 8 heads, ff 688, vocab 512; seq 128, batch 8).
# Environment: ROUNDS (default 3), STEPS (timed steps per run, default 20), PYTHON (default
# /usr/bin/python3, Debian's python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."
SMELT=build/smelt
PYTHON=${PYTHON:-/usr/bin/python3}
SHAPE=${1:-stories260K}
shift || true
THREADS=("$@")
[ ${#THREADS[@]} -eq 0 ] && THREADS=(1 2)
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-20}
ASSETS=../shared/assets
TOKENIZER=$ASSETS/stories260K/stories260K.gguf
DATA=$ASSETS/tinystories_train_prefix/tinystories_train_prefix_2MiB.txt
case "$SHAPE" in
  stories260K) DIM=64 LAYERS=5 HEADS=8 KV=4 FF=172 SEQ=256 BATCH=8 ;;
  d256) DIM=256 LAYERS=6 HEADS=8 KV=8 FF=688 SEQ=128 BATCH=8 ;;
  *) echo "unknown shape $SHAPE (stories260K or d256)" >&2; exit 2 ;;
esac
VOCAB=512
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "shape $SHAPE: dim $DIM, layers $LAYERS, heads $HEADS, kv heads $KV, ff $FF, vocab $VOCAB; seq $SEQ, batch $BATCH; $STEPS steps per run"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "smelt: $("$SMELT" sysinfo --json | "$PYTHON" -c 'import json,sys; j=json.load(sys.stdin); print("OpenBLAS", j["openblas"], "kernel path", j["kernel_path"])')"
# The BLAS PyTorch runs is whatever libblas.so.3 resolves to (Debian's build says "generic"):
# name the libraries it has mapped after a product.
echo "torch: $("$PYTHON" -c 'import torch, os; torch.ones(64, 64) @ torch.ones(64, 64); libs = sorted({os.path.basename(l.split()[-1]) for l in open("/proc/self/maps") if "blas" in l}); print(torch.__version__, "BLAS libraries", " ".join(libs))')"

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for t in "${THREADS[@]}"; do
  : >"$WORK/smelt.$t"
  : >"$WORK/torch.$t"
  for r in $(seq "$ROUNDS"); do
    # smelt's timer covers its steps, the first one included (not loading, tokenizing or the final
    # validation); the PyTorch script times the steps after 3 untimed warm-up steps.
    s=$(OMP_NUM_THREADS=$t "$SMELT" train --data "$DATA" --tokenizer "$TOKENIZER" \
      --config "dim=$DIM,layers=$LAYERS,heads=$HEADS,kv-heads=$KV,ff=$FF,ctx=$SEQ" --steps "$STEPS" \
      --batch "$BATCH" --seq "$SEQ" --val-frac 0.01 --eval-batches 1 -t "$t" --json -o "$WORK/m.gguf" |
      "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_second"])')
    p=$(OMP_NUM_THREADS=$t "$PYTHON" scripts/bench-train-torch.py --dim "$DIM" --layers "$LAYERS" --heads "$HEADS" \
      --kv-heads "$KV" --ff "$FF" --vocab "$VOCAB" --seq "$SEQ" --batch "$BATCH" --steps "$STEPS" --threads "$t" |
      "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_second"])')
    echo "threads $t round $r: smelt $(printf %.0f "$s") tok/s, pytorch $(printf %.0f "$p") tok/s"
    echo "$s" >>"$WORK/smelt.$t"
    echo "$p" >>"$WORK/torch.$t"
  done
  ms=$(median <"$WORK/smelt.$t")
  mp=$(median <"$WORK/torch.$t")
  echo "threads $t median: smelt $(printf %.0f "$ms") tok/s, pytorch $(printf %.0f "$mp") tok/s, ratio $(awk -v a="$ms" -v b="$mp" 'BEGIN {printf "%.2f", a / b}')"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
