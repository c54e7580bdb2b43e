#!/usr/bin/env bash
# Installs what is needed, builds smelt (Release), runs every test, then builds again with
# clang + AddressSanitizer/UndefinedBehaviorSanitizer and runs the tests and each libFuzzer
# target briefly on its seed corpus. Usage: scripts/test.sh [--no-asan]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
bash scripts/install-deps.sh

# The llama.cpp peer (parity tests); tests that need it skip if it cannot be installed.
if [ -x ../shared/peer/llamacpp ]; then
  ../shared/peer/llamacpp setup >/dev/null 2>&1 || echo "test.sh: llama.cpp peer unavailable; parity tests will skip"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS"
(cd build && ctest --output-on-failure -j"$JOBS")

if [ "${1:-}" != "--no-asan" ]; then
  # Line tables are all a sanitizer report needs for file:line; lld links the large test binary
  # faster than the default linker.
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" -DCMAKE_C_FLAGS_DEBUG="-O1 -gline-tables-only" \
    -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld \
    -DSMELT_SANITIZE=ON -DSMELT_FUZZ=ON -DSMELT_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$JOBS"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$JOBS" -E "Peer|Slow|Mpi")
  bash scripts/fuzz.sh build-asan "${FUZZ_SECONDS:-15}"
fi
