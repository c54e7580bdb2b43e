#pragma once
// Software prefetch for the kernels that stream weight rows once per token (decoding reads each
// weight byte once, so the hardware prefetcher alone leaves the loads waiting on memory).
#include <cstddef>
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <xmmintrin.h>
#endif

namespace smelt {

// How far ahead of the bytes being multiplied their successors are asked for, chosen once per
// process by ChoosePrefetchDistance from the CPU's model name. Measured on the 220M synth model,
// 1 thread:
//   - 2-core AMD EPYC (AVX2): 1536 B best for the packed Q4_0/Q8_0 kernels (Q4_0 decode 96 -> 148
//     t/s against one line 384 B ahead; 384, 768, 2560 and 4096 B slower).
//   - 2-vCPU Intel Xeon (AVX-512, AMX): 6144 B best. Decode t/s at 1536, 3072 and 6144 B: Q4_0
//     142-145, 124-144, 189-191; F16 29-33, 35-36, 35; w8a8 69-71, 74-76, 74-75; the 2:4 file
//     in sp50_w8a8 94-95, 101-110, 103-118 (2 threads: 172-184, 211-217, 216-237).
// The environment variable SMELT_PREFETCH_DISTANCE (bytes, a multiple of 64 up to 65536)
// overrides the choice, so that one binary can time several distances side by side.
size_t ChoosePrefetchDistance(const std::string& cpu_model, const char* env_override);
inline constexpr size_t kPrefetchDistanceAmd = 1536, kPrefetchDistanceIntel = 6144;
// This process's distance (ChoosePrefetchDistance on this CPU and the environment at start-up).
extern const size_t kPrefetchDistance;
// The bitmask rows' 32-bit masks (4 bytes per 32 weights) take one line per 16 blocks and are
// asked for this much ahead: a sixth of the codes' distance (1024 B at 6144).
inline size_t MaskPrefetchDistance() { return kPrefetchDistance / 6 / 64 * 64; }

// Asks for every 64-byte line of the `bytes` bytes that start `distance` bytes after p.
template <size_t bytes>
inline void PrefetchAhead(const void* p, size_t distance = kPrefetchDistance) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  for (size_t line = 0; line < bytes; line += 64)
    _mm_prefetch(static_cast<const char*>(p) + distance + line, _MM_HINT_T0);
#else
  (void)p;
  (void)distance;
#endif
}

}  // namespace smelt
