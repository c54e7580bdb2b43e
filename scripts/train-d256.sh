#!/usr/bin/env bash
# The project's k-quant-sized model: dim 256 (a multiple of the k-quants' 256-blocks, which
# stories260K's 64 and the main job's 128 are not), 3 blocks, 8/4 heads, ff 768, stories260K's
# 512-token vocabulary, trained by `smelt train` on the TinyStories training prefix (1,000 steps
# of 8 × 128 tokens, seed 1: about 1 epoch). The quantization benchmarks use it for k-quants and
# 3-bit types. Writes OUT (default d256.gguf); about 4 minutes on 2 idle cores.
#   bash scripts/train-d256.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-d256.gguf}
build/smelt train --data ../shared/assets/tinystories_train_prefix/tinystories_train_prefix_2MiB.txt \
  --config dim=256,layers=3,heads=8,kv-heads=4,ff=768,ctx=512 \
  --tokenizer ../shared/assets/stories260K/stories260K.gguf \
  --steps 1000 --batch 8 --seq 128 --lr 2e-3 --warmup 20 -t "${THREADS:-2}" --seed 1 --json -o "$OUT"
