#!/usr/bin/env bash
# Load benchmark: how long smelt takes to open a 1 GB GGUF file and how much memory that costs.
# smelt maps GGUF files (mmap) and reads tensors in place, so opening one touches only its header
# and a model's resident memory is the mapped file pages it reads, never a second copy.
#   bash scripts/bench-load.sh [WORKDIR]    (needs build/smelt; writes a 1.03 GB file to WORKDIR)
# Prints, for each command: wall seconds and peak resident set (GNU time), with the file size.
set -euo pipefail
cd "$(dirname "$0")/.."
SMELT=build/smelt
WORK=${1:-${TMPDIR:-/tmp}/smelt-bench-load}
mkdir -p "$WORK"
MODEL="$WORK/synth-258m-f32.gguf"
if [ ! -f "$MODEL" ]; then
  # 258.3M parameters in F32 (1.03 GB): dim 1024, 15 layers, 16 heads, ff 2816, vocab 32000, untied.
  "$SMELT" synth --dim 1024 --layers 15 --heads 16 --ff 2816 --vocab 32000 --type f32 -o "$MODEL" >/dev/null
fi
bytes=$(stat -c %s "$MODEL")
echo "file: $(basename "$MODEL"), $bytes bytes ($(awk "BEGIN{printf \"%.1f\", $bytes/1048576}") MiB)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), threads: 1, page cache warm (second run of each)"
measure() {  # measure LABEL CMD...: runs CMD twice, reports the second run
  local label=$1; shift
  "$@" >/dev/null 2>&1 || true
  local f="$WORK/time.txt"
  /usr/bin/time -o "$f" -f '%e %M' "$@" >/dev/null 2>&1
  read -r secs kib <"$f"
  printf '| %-44s | %6s s | %8.1f MiB |\n' "$label" "$secs" "$(awk "BEGIN{print $kib/1024}")"
}
echo "| command                                      |   wall   |  peak RSS    |"
echo "|----------------------------------------------|----------|--------------|"
measure "smelt inspect --no-tensors (open, validate)" "$SMELT" inspect --no-tensors "$MODEL"
measure "smelt run -n 1 (every weight read once)" "$SMELT" run "$MODEL" -p "a" -n 1 -t 1
