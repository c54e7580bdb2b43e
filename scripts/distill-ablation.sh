#!/usr/bin/env bash
# Distillation ablation: one student (dim 32, 3 blocks, 4/2 heads, ff 86; stories260K's vocabulary)
# distilled from stories260K on the TinyStories training prefix with the same data, steps, seed
# and threads, one row per objective; then the development text's mean NLL (ln ppl) and the
# KL-divergence to stories260K, both from `smelt eval kld` (windows of 128, second halves scored).
# The multi-teacher row adds a second teacher: stories260K trained further on the same text.
#   bash scripts/distill-ablation.sh [WORKDIR] [THREADS]
# Environment: STEPS (200). Needs build/smelt and jq.
set -euo pipefail
WORK=${1:-$(mktemp -d)}
THREADS=${2:-1}
STEPS=${STEPS:-200}
cd "$(dirname "$0")/.."
SMELT=$PWD/build/smelt
T1=../shared/assets/stories260K/stories260K.gguf
DATA=../shared/assets/tinystories_train_prefix/tinystories_train_prefix_2MiB.txt
DEV=../shared/assets/tinystories_valid_sample/tinystories_val_dev.txt
mkdir -p "$WORK"
T2="$WORK/teacher2.gguf"
[ -f "$T2" ] || "$SMELT" train --init "$T1" --data "$DATA" --steps 200 --batch 8 --seq 128 --lr 5e-4 --warmup 10 \
  -t "$THREADS" --seed 7 -o "$T2" >/dev/null
COMMON=(--student-config dim=32,layers=3,heads=4,kv-heads=2,ff=86,ctx=512 --data "$DATA" --steps "$STEPS"
  --batch 8 --seq 128 --lr 3e-3 --warmup 20 --seed 1 -t "$THREADS" --json)
row() {  # row NAME DISTILL-FLAGS...
  local name=$1
  shift
  local out="$WORK/$name.gguf"
  local tps
  tps=$("$SMELT" distill --teacher "$T1" "$@" "${COMMON[@]}" -o "$out" | jq -r '.tokens_per_second|floor')
  "$SMELT" eval kld "$out" --base "$T1" --text "$DEV" --ctx 128 -t "$THREADS" --json |
    jq -r --arg n "$name" --arg t "$tps" '"| \($n) | \(.ppl_model|log*1000|round/1000) | \(.kld_mean*1000|round/1000) | \($t) |"'
}
echo "| objective | dev NLL | KLD to stories260K | train tok/s |"
echo "|---|---|---|---|"
row ce-only --alpha 1
row soft-kl --alpha 0.2
row plus-feature --alpha 0.2 --feature-weight 1
row plus-attention --alpha 0.2 --feature-weight 1 --attention-weight 1
row plus-relation --alpha 0.2 --feature-weight 1 --attention-weight 1 --relation-weight 1
row plus-value --alpha 0.2 --feature-weight 1 --attention-weight 1 --relation-weight 1 --value-weight 1
row soft-plus-feature-0.1 --alpha 0.2 --feature-weight 0.1
row soft-plus-attention-0.1 --alpha 0.2 --attention-weight 0.1
row reverse-kl --alpha 0.2 --divergence reverse-kl
row multi-teacher --alpha 0.2 --teacher "$T2"
row multi-teacher-loss-weighted --alpha 0.2 --teacher "$T2" --teacher-weighting loss
row curriculum --alpha 0.2 --curriculum --pacing 0.2,150
