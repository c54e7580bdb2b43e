#!/usr/bin/env bash
# Pruning quality table on one model, measured on held-out text against the unpruned model:
# magnitude, Wanda and SparseGPT at 50 % unstructured and at 2:4, then structured removal of
# channels, heads (KV groups) and layers, with channels and heads allocated uniformly, globally
# (by score) and by measured KLD.
#   bash scripts/bench-prune.sh [MODEL] [EVAL_TEXT] [CALIB_TEXT] [CTX] [CHUNKS]
# Defaults as the quantization benchmarks (scripts/bench-common.sh). Environment:
#   CHANNELS ("0.18 0.36 0.53"), HEADS ("0.25 0.5"), LAYERS ("0.2 0.4"): the structured ratios;
#   CALIB_SAMPLES (64), CALIB_TOKENS (256); THREADS (2);
#   SPARSE_TYPES (e.g. "f32 q4_0 sp70_w4a8 sp70_w8a8"; default none): a third table, each method at
#   SPARSE_SPARSITY (0.7) stored in each type (f32: the pruned matrices as they are).
# Needs build/smelt. Prints two (three) markdown tables: method, sparsity or ratio, allocation, share of
# all parameters removed, perplexity, KL-divergence to the unpruned model (mean ± standard error),
# same-top-token %; the structured one adds each block's kept sizes, the stored one the file's
# size and how many pruned matrices the type took (the others fall back, e.g. rows it cannot split).
source "$(dirname "$0")/bench-common.sh"
CAL=(--calib "$CALIB" --calib-samples "${CALIB_SAMPLES:-64}" --calib-tokens "${CALIB_TOKENS:-256}")
EVAL=(--text "$TEXT" --ctx "$CTX" --chunks "$CHUNKS" -t "$THREADS" --json)
row() {  # row LABEL ARGS...: one prune, one table row from its JSON report (TYPE set: the stored table's)
  local label=$1
  shift
  "$SMELT" prune "$MODEL" -o "$WORK/p.gguf" "$@" "${EVAL[@]}" >"$WORK/p.json"
  local stored=()
  [ -n "${TYPE:-}" ] && stored=("$TYPE" "$(stat -c %s "$WORK/p.gguf")")
  python3 - "$label" "$WORK/p.json" "${stored[@]}" <<'PY'
import json, sys
label, j = sys.argv[1], json.load(open(sys.argv[2]))
q = j["quality"]
if len(sys.argv) > 3:  # stored in a type: argv 3 the type, argv 4 the file's bytes
    want = sys.argv[3]
    took = sum(1 for m in j["matrices"] if m["to"] == want or want == "f32")
    print(f"| {label} | {100 * j['sparsity']:.1f} % | {int(sys.argv[4]) / 1024:.0f} | {took} of {len(j['matrices'])} | "
          f"{q['ppl']:.2f} | {q['kld_mean']:.3f} ± {q['kld_stderr']:.3f} | {100 * q['same_top']:.2f} |")
elif "parameters_removed" in j:  # structured
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
if [ -n "${SPARSE_TYPES:-}" ]; then
  echo
  echo "| method, stored as | pruned matrices' sparsity | file KiB | matrices in the type | ppl | KLD mean ± se | same top % |"
  echo "|---|---|---|---|---|---|---|"
  for type in $SPARSE_TYPES; do
    for method in magnitude wanda sparsegpt; do
      args=(--method "$method" --sparsity "${SPARSE_SPARSITY:-0.7}")
      [ "$method" != magnitude ] && args+=("${CAL[@]}")
      [ "$type" != f32 ] && args+=(--type "$type")
      TYPE=$type row "$method, $type" "${args[@]}"
    done
  done
fi
