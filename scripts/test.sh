#!/usr/bin/env bash
# Installs what is needed, builds smelt (Release), runs every test and the kernel tests again
# with the dispatch capped to each narrower instruction set, then builds again with
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
# The kernels' narrower twins end to end, on a CPU that also has wider ones: SMELT_MAX_ISA caps
# the dispatch (on a CPU without them these runs repeat paths that ran above; seconds each).
KERNEL_TESTS='Packed|QDot|Fused|HalfGemm|Attention|Greedy|Cpu|Repack|Batch|Specul|FormatsActivation'
for isa in avx512 avx2 scalar; do
  echo "test.sh: kernel tests with SMELT_MAX_ISA=$isa"
  (cd build && SMELT_MAX_ISA=$isa ctest --output-on-failure -j"$JOBS" -R "$KERNEL_TESTS")
done

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
