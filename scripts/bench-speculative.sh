#!/usr/bin/env bash
# Speculative decoding against plain decoding on the same target, one after the other:
#   bash scripts/bench-speculative.sh TARGET.gguf DRAFT.gguf [K ...]   (K: draft tokens per step; default 4 8)
# Environment: N tokens to generate (64), T threads (1), PROMPT (a fixed sentence). Prints the
# decode t/s of each run, the draft's acceptance rate, the speed-up, and whether the generated
# tokens are the plain run's. Needs build/smelt and jq.
set -euo pipefail
TARGET=${1:?usage: bench-speculative.sh TARGET.gguf DRAFT.gguf [K ...]}
DRAFT=${2:?usage: bench-speculative.sh TARGET.gguf DRAFT.gguf [K ...]}
shift 2
KS=("$@")
[ ${#KS[@]} -gt 0 ] || KS=(4 8)
N=${N:-64}
T=${T:-1}
PROMPT=${PROMPT:-"Once upon a time"}
cd "$(dirname "$0")/.."
SMELT=build/smelt
echo "target: $(basename "$TARGET"), $(stat -c %s "$TARGET") bytes; draft: $(basename "$DRAFT"), $(stat -c %s "$DRAFT") bytes"
echo "threads: $T; $N tokens after the prompt \"$PROMPT\"; greedy; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
plain=$("$SMELT" run "$TARGET" -p "$PROMPT" -n "$N" -t "$T" --json)
base=$(jq .decode_tok_s <<<"$plain")
echo "| run | decode t/s | acceptance | speed-up | same tokens |"
echo "|---|---:|---:|---:|---|"
printf "| plain | %.2f | | 1.00 | |\n" "$base"
for k in "${KS[@]}"; do
  spec=$("$SMELT" run "$TARGET" -p "$PROMPT" -n "$N" -t "$T" --draft "$DRAFT" --draft-n "$k" --json)
  same=$([ "$(jq -c .tokens <<<"$spec")" = "$(jq -c .tokens <<<"$plain")" ] && echo yes || echo NO)
  jq -r --argjson base "$base" --arg k "$k" --arg same "$same" \
    '"| draft, k = \($k) | \(.decode_tok_s * 100 | round / 100) | \(.speculative.acceptance_rate * 1000 | round / 10) % | \(.decode_tok_s / $base * 100 | round / 100) | \($same) |"' <<<"$spec"
done
