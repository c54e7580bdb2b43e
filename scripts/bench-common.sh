# Sourced by the quantization benchmarks: the positional arguments
#   [MODEL] [EVAL_TEXT] [CALIB_TEXT] [CTX] [CHUNKS]
# with their defaults (stories260K.gguf, the held-out TinyStories validation sample, the
# TinyStories training prefix, ctx 512, all windows), THREADS (default 2), and a scratch folder
# $WORK removed on exit. Runs from the repository root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SMELT=build/smelt
ASSETS=../shared/assets
MODEL=${1:-$ASSETS/stories260K/stories260K.gguf}
TEXT=${2:-$ASSETS/tinystories_valid_sample/tinystories_val_dev.txt}
CALIB=${3:-$ASSETS/tinystories_train_prefix/tinystories_train_prefix_2MiB.txt}
CTX=${4:-512}
CHUNKS=${5:-0}
THREADS=${THREADS:-2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
