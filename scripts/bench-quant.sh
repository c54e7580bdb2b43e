#!/usr/bin/env bash
# Quantization quality table: every GGUF type smelt writes × method, on one model, measured on
# held-out text against the unquantized model.
#   bash scripts/bench-quant.sh [MODEL] [EVAL_TEXT] [CALIB_TEXT] [CTX] [CHUNKS]
# Methods: rtn, mse, imatrix (mse weighted by calibration importance), gptq, awq (then rtn), awq_clip
# (awq, then the importance-weighted mse search), smooth (SmoothQuant alpha 0.5, then rtn)
# (METHODS=... to pick).
# Defaults: stories260K.gguf, the TinyStories validation sample (held out), the TinyStories
# training prefix for calibration (CALIB_SAMPLES=64 samples × CALIB_TOKENS=512 tokens), ctx 512,
# all windows. Needs build/smelt. Prints a markdown table: type, method, bits/weight over all
# tensors, file size, perplexity, KL-divergence to the base (mean, p99), same-top-token %.
source "$(dirname "$0")/bench-common.sh"
TYPES=${TYPES:-"q8_0 q6_K q5_1 q5_0 q5_K q4_1 q4_0 q4_K iq4_nl q3_K q2_K"}

echo "model: $MODEL; eval: $(basename "$TEXT") ctx $CTX chunks $CHUNKS; calibration: $(basename "$CALIB") ${CALIB_SAMPLES:-64} x ${CALIB_TOKENS:-512}; threads $THREADS"
"$SMELT" eval kld "$MODEL" --base "$MODEL" --text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" -t "$THREADS" \
  --save-base-logits "$WORK/base.logp" --json >"$WORK/base.json"
base_ppl=$(python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["ppl_base"])' "$WORK/base.json")
echo
echo "| type | method | bits/weight | size (KiB) | ppl | KLD mean | KLD p99 | same top % |"
echo "|---|---|---|---|---|---|---|---|"
bytes=$(stat -c %s "$MODEL")
echo "| (base) | - | - | $((bytes / 1024)) | $base_ppl | 0 | 0 | 100 |"
for t in $TYPES; do
  for m in ${METHODS:-rtn mse imatrix gptq awq awq_clip}; do
    case $m in
      imatrix) args=(--method mse) ;;
      awq_clip) args=(--method awq --awq-clip) ;;
      smooth) args=(--method rtn --smooth 0.5) ;;
      *) args=(--method "$m") ;;
    esac
    args+=(--type "$t")
    case $m in imatrix | gptq | awq | awq_clip | smooth) args+=(--calib "$CALIB" --calib-samples "${CALIB_SAMPLES:-64}" --calib-tokens "${CALIB_TOKENS:-512}") ;; esac
    "$SMELT" quantize "$MODEL" -o "$WORK/q.gguf" "${args[@]}" -t "$THREADS" --json >"$WORK/q.json"
    "$SMELT" eval kld "$WORK/q.gguf" --base-logits "$WORK/base.logp" --text "$TEXT" --ctx "$CTX" \
      --chunks "$CHUNKS" -t "$THREADS" --json >"$WORK/k.json"
    python3 - "$t" "$m" "$WORK/q.json" "$WORK/k.json" "$(stat -c %s "$WORK/q.gguf")" <<'PY'
import json, sys
t, m, qf, kf, size = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
q, k = json.load(open(qf)), json.load(open(kf))
print(f"| {t} | {m} | {q['bits_per_weight']:.3f} | {size // 1024} | {k['ppl_model']:.4f} | "
      f"{k['kld_mean']:.5f} | {k['kld_p99']:.4f} | {100 * k['same_top']:.2f} |")
PY
  done
done
