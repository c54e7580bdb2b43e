#!/usr/bin/env bash
# Quantization speed and memory: `smelt quantize` of a 219.7M-parameter F32 model (smelt synth:
# dim 1024, 12 layers, 16 heads, ff 2816, vocab 32000, ~880 MB) to each type by round-to-nearest
# on 1 and 2 threads, then GPTQ to Q4_0 with N × 512 calibration tokens of the TinyStories
# training prefix on 2 threads. Prints each command's wall time, CPU time (user + system) and
# peak resident memory (GNU time), and the encoding time smelt reports.
#   bash scripts/bench-quant-speed.sh [WORKDIR] [TYPES] [THREADS] [GPTQ_SAMPLES]
# GPTQ_SAMPLES: calibration sample counts for the GPTQ rows (default "32 128"; "" skips them).
# The staged calibration pass runs whole sequences on each worker with single-threaded OpenBLAS
# GEMMs (OpenBLAS threads: 1 per worker); the GPTQ updates likewise split rows over workers.
# The model and outputs live in WORKDIR (default $TMPDIR/smelt-bench-quant-speed) and are
# deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SMELT=build/smelt
WORK=${1:-${TMPDIR:-/tmp}/smelt-bench-quant-speed}
TYPES=${2-"q4_0 q2_K q3_K q4_K q5_K q6_K"}
THREADS=${3:-"2 1"}
GPTQ_SAMPLES=${4-"32 128"}
CALIB=../shared/assets/tinystories_train_prefix/tinystories_train_prefix_2MiB.txt
mkdir -p "$WORK"
trap 'rm -f "$WORK"/synth-220m-f32.gguf "$WORK"/out.gguf "$WORK"/time.txt' EXIT
MODEL="$WORK/synth-220m-f32.gguf"
"$SMELT" synth --dim 1024 --layers 12 --heads 16 --ff 2816 --vocab 32000 --type f32 -o "$MODEL" >/dev/null
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "| command | threads | wall (s) | cpu (s) | peak RSS (MiB) | encoding (s, as printed) | load before |"
echo "|---|---|---|---|---|---|---|"
run() {  # label threads args...
  local label=$1 th=$2 load out enc
  shift 2
  load=$(cut -d' ' -f1 /proc/loadavg)
  out=$(/usr/bin/time -o "$WORK/time.txt" -f '%e %U %S %M' "$SMELT" quantize "$MODEL" -o "$WORK/out.gguf" -t "$th" "$@")
  enc=$(sed -n 's/.*quantized in \([0-9.]*\) s.*/\1/p' <<<"$out")
  read -r wall user sys rss <"$WORK/time.txt"
  printf '| %s | %s | %s | %.1f | %d | %s | %s |\n' "$label" "$th" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" \
    $((rss / 1024)) "$enc" "$load"
}
for t in $TYPES; do
  for th in $THREADS; do run "rtn $t" "$th" --type "$t"; done
done
for n in $GPTQ_SAMPLES; do
  run "gptq q4_0, $n x 512 calib" 2 --type q4_0 --method gptq --calib "$CALIB" --calib-samples "$n" --calib-tokens 512
done
