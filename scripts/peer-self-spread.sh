#!/usr/bin/env bash
# How far llama.cpp's log-probs are from themselves: `smelt synth` models (dim 128, 3 blocks, 8/4
# heads, ff 352, vocab 1024; the shape of SynthPeer.LogprobsMatchLlamaCppForF32F16Q8_0Q4_0) in
# each TYPE, a BOS and 299 random tokens per SEED, evaluated by llama.cpp in one batch and with one
# call per token (scripts/peer-self-spread.mjs). The spread of its own two runs is the scale
# against which smelt's distance to llama.cpp on quantized files (docs/BENCHMARKS.md) is read.
#   bash scripts/peer-self-spread.sh [TYPES] [SEEDS]   (defaults: "f32 f16 q8_0 q4_0", "3 4 5")
# Needs build/smelt, node and python3. Prints one markdown row per file and token sequence.
set -euo pipefail
TYPES=${1:-f32 f16 q8_0 q4_0}
SEEDS=${2:-3 4 5}
cd "$(dirname "$0")/.."
PEER_DIR=${SMELT_PEER_DIR:-/tmp/smelt-peer}
../shared/peer/llamacpp setup >/dev/null
cp scripts/peer-self-spread.mjs "$PEER_DIR"/
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "| type | token seed | positions | max \|Δ log-prob\| | first position above 1e-4 | top-1 flips (batch run's gap) |"
echo "|---|---:|---:|---:|---:|---|"
for type in $TYPES; do
  build/smelt synth --dim 128 --layers 3 --heads 8 --kv-heads 4 --ff 352 --vocab 1024 --seed 7 --type "$type" \
    -o "$WORK/$type.gguf" >/dev/null
  for seed in $SEEDS; do
    toks=$(python3 -c "import random,sys; random.seed(int(sys.argv[1])); print(','.join(['1'] + [str(3 + random.randrange(1021)) for _ in range(299)]))" "$seed")
    (cd "$PEER_DIR" && node peer-self-spread.mjs "$WORK/$type.gguf" "$toks") | python3 -c "
import json, sys
j = json.loads(sys.stdin.read().strip().splitlines()[-1])
flips = ', '.join(f\"{f['pos']} ({f['gap']:.4f})\" for f in j['top1_flips']) or 'none'
print(f\"| $type | $seed | {j['positions']} | {j['max_abs']:.2e} | {j['first_above_1e4'] if j['first_above_1e4'] is not None else '-'} | {len(j['top1_flips'])}: {flips} |\")"
  done
done
