#!/usr/bin/env bash
# Pruning quality table on one model, measured on held-out text against the unpruned model:
# magnitude, Wanda and SparseGPT at 50 % unstructured and at 2:4, then structured removal of
# channels, heads (KV groups) and layers, with channels and heads allocated uniformly, globally
# (by score) and by measured KLD.
#   bash scripts/bench-prune.sh [MODEL] [EVAL_TEXT] [CALIB_TEXT] [CTX] [CHUNKS]
# Defaults as the quantization benchmarks (scripts/bench-common.sh). Environment:
#   CHANNELS ("0.18 0.36 0.53"), HEADS ("0.25 0.5"), LAYERS ("0.2 0.4"): the structured ratios;
#   CALIB_SAMPLES (64), CALIB_TOKENS (256); THREADS (2).
# Needs build/smelt. Prints two markdown tables: method, sparsity or ratio, allocation, share of
# all parameters removed, perplexity, KL-divergence to the unpruned model (mean ± standard error),
# same-top-token %; the structured one adds each block's kept sizes.
source "$(dirname "$0")/bench-common.sh"
CAL=(--calib "$CALIB" --calib-samples "${CALIB_SAMPLES:-64}" --calib-tokens "${CALIB_TOKENS:-256}")
EVAL=(--text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" -t "$THREADS" --json)
row() {  # row LABEL ARGS...: one prune, one table row from its JSON report
  local label=$1
  shift
  "$SMELT" prune "$MODEL" -o "$WORK/p.gguf" "$@" "${EVAL[@]}" >"$WORK/p.json"
  python3 - "$label" "$WORK/p.json" <<'PY'
import json, sys
label, j = sys.argv[1], json.load(open(sys.argv[2]))
q = j["quality"]
if "parameters_removed" in j:  # structured
    c = j["config"]
    kept = []
    if "layer_kv_heads" in c: kept.append("kv " + ", ".join(map(str, c["layer_kv_heads"])))
    if "layer_ff" in c: kept.append("ff " + ", ".join(map(str, c["layer_ff"])))
    if not kept: kept.append(f"{c['layers']} blocks, kv {c['kv_heads']}, ff {c['ff']}")
    removed = 100 * j["parameters_removed"]
    print(f"| {label} | {removed:.1f} % | {'; '.join(kept)} | {q['ppl']:.2f} | "
          f"{q['kld_mean']:.3f} ± {q['kld_stderr']:.3f} | {100 * q['same_top']:.2f} |")
else:
    print(f"| {label} | {100 * j['sparsity']:.1f} % ({100 * j['model_sparsity']:.1f} % of all) | {q['ppl']:.2f} | "
          f"{q['kld_mean']:.3f} ± {q['kld_stderr']:.3f} | {100 * q['same_top']:.2f} |")
PY
}

echo "model: $MODEL; eval: $(basename "$TEXT") ctx $CTX chunks $CHUNKS; calibration: $(basename "$CALIB")" \
  "${CALIB_SAMPLES:-64} x ${CALIB_TOKENS:-256}; threads $THREADS"
"$SMELT" eval ppl "$MODEL" --text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" -t "$THREADS" --json >"$WORK/base.json"
base_ppl=$(python3 -c 'import json,sys; print("%.4f" % json.load(open(sys.argv[1]))["ppl"])' "$WORK/base.json")
echo
echo "| method | pruned matrices' sparsity | ppl | KLD mean ± se | same top % |"
echo "|---|---|---|---|---|"
echo "| dense | 0 | $base_ppl | 0 | 100 |"
for pattern in "" 2:4; do
  for method in magnitude wanda sparsegpt; do
    args=(--method "$method" --sparsity 0.5)
    [ -n "$pattern" ] && args+=(--pattern "$pattern")
    [ "$method" != magnitude ] && args+=("${CAL[@]}")
    row "$method ${pattern:-50 %}" "${args[@]}"
  done
done
echo
echo "| structure, ratio, allocation | parameters removed | kept per block | ppl | KLD mean ± se | same top % |"
echo "|---|---|---|---|---|---|"
for r in ${CHANNELS:-0.18 0.36 0.53}; do
  for al in uniform global measured; do row "channels $r $al" --structured channels --ratio "$r" --allocation "$al" "${CAL[@]}"; done
done
for r in ${HEADS:-0.25 0.5}; do
  for al in uniform global measured; do row "heads $r $al" --structured heads --ratio "$r" --allocation "$al" "${CAL[@]}"; done
done
for r in ${LAYERS:-0.2 0.4}; do
  for score in cosine kld; do row "layers $r $score" --structured layers --ratio "$r" --layer-score "$score" "${CAL[@]}"; done
done
