#!/usr/bin/env bash
# The main job: installs what is needed, builds smelt, and runs `smelt demo`: a teacher trained on
# the King James Bible, a student distilled from it, quantized and pruned, one table of size, ppl,
# KLD and speed (cached in ~/.cache/smelt/demo after the first run; --model PATH runs the
# compression part on your model instead). See README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS" --target smelt
exec build/smelt demo "$@"
