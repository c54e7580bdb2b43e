#!/usr/bin/env bash
# Mixed precision vs uniform types: `smelt quantize --target-bpw` (proxy and kl sensitivity) at a
# few targets, and each candidate type alone, measured on held-out text against the unquantized
# model.
#   bash scripts/bench-mixed.sh [MODEL] [EVAL_TEXT] [CALIB_TEXT] [CTX] [CHUNKS]
# Env: TARGETS (bits per weight over the weight matrices), CANDIDATES, CALIB_SAMPLES (x
# CALIB_TOKENS, default 256 tokens), THREADS. Defaults: stories260K.gguf, the TinyStories
# validation sample (held out), the TinyStories training prefix for calibration, ctx 512, all
# windows. Needs build/smelt. Prints a markdown table: recipe, bits/weight over the matrices,
# file size, perplexity, KL-divergence to the base (mean, p99), same-top-token %, the types chosen.
source "$(dirname "$0")/bench-common.sh"
CANDIDATES=${CANDIDATES:-i3s_g32,q4_0,q5_0,q8_0}
TARGETS=${TARGETS:-"6.2 6.67 7.0 7.48 8.0"}
SAMPLES=${CALIB_SAMPLES:-32}

echo "model: $MODEL; eval: $(basename "$TEXT") ctx $CTX chunks $CHUNKS; calibration: $(basename "$CALIB") $SAMPLES x ${CALIB_TOKENS:-256}; candidates $CANDIDATES; method rtn; threads $THREADS"
"$SMELT" eval kld "$MODEL" --base "$MODEL" --text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" -t "$THREADS" \
  --save-base-logits "$WORK/base.logp" --json >"$WORK/base.json"
echo
echo "| recipe | bits/weight (matrices) | size (KiB) | ppl | KLD mean | KLD p99 | same top % | types chosen |"
echo "|---|---|---|---|---|---|---|---|"
measure() {  # LABEL, then quantize arguments
  local label=$1
  shift
  "$SMELT" quantize "$MODEL" -o "$WORK/q.gguf" "$@" -t "$THREADS" --json >"$WORK/q.json"
  "$SMELT" eval kld "$WORK/q.gguf" --base-logits "$WORK/base.logp" --text "$TEXT" --ctx "$CTX" \
    --chunks "$CHUNKS" -t "$THREADS" --json >"$WORK/k.json"
  python3 - "$label" "$WORK/q.json" "$WORK/k.json" "$(stat -c %s "$WORK/q.gguf")" <<'PY'
import collections, json, sys
label, qf, kf, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
q, k = json.load(open(qf)), json.load(open(kf))
types = collections.Counter(t["to"] for t in q["tensors"])
chosen = " ".join(f"{n}×{t}" for t, n in sorted(types.items(), key=lambda x: -x[1]))
print(f"| {label} | {q['matrix_bits_per_weight']:.3f} | {size // 1024} | {k['ppl_model']:.4f} | "
      f"{k['kld_mean']:.5f} | {k['kld_p99']:.4f} | {100 * k['same_top']:.2f} | {chosen} |")
PY
}
for t in ${CANDIDATES//,/ }; do measure "uniform $t" --type "$t"; done
for b in $TARGETS; do
  for s in proxy kl; do
    measure "mixed $b, $s" --target-bpw "$b" --candidates "$CANDIDATES" --sensitivity "$s" \
      --calib "$CALIB" --calib-samples "$SAMPLES" --calib-tokens "${CALIB_TOKENS:-256}"
  done
done
