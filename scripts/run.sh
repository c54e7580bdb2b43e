#!/usr/bin/env bash
# The main job: installs what is needed, builds smelt, and runs the end-to-end demo on the
# embedded default model (or --model PATH). See README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS" --target smelt
exec build/smelt demo "$@"
