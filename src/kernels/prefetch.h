#pragma once
// Software prefetch for the kernels that stream weight rows once per token (decoding reads each
// weight byte once, so the hardware prefetcher alone leaves the loads waiting on memory).
#include <cstddef>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <xmmintrin.h>
#endif

namespace smelt {

// How far ahead of the bytes being multiplied their successors are asked for: 1536 B measured
// best for the packed Q4_0/Q8_0 kernels (220M model, 1 thread: Q4_0 decode 96 -> 148 t/s against
// one line 384 B ahead; 384, 768, 2560 and 4096 B slower) and serves the other streaming kernels.
inline constexpr size_t kPrefetchDistance = 1536;

// The bitmask rows against per-token int8 activations (sp50_w8a8, sp70_w8a8) consume their
// bytes more slowly per step of 64 weights than dense rows and measured best further ahead:
// 6144 B for the codes, 1024 B for the masks (220M model with every matrix 2:4 sparse, decode
// t/s at 1536/256 B, 3072/512 and 6144/1024: 1 thread 94-95, 101-110, 103-118; 2 threads
// 172-184, 211-217, 216-237).
inline constexpr size_t kSparseCodesPrefetchDistance = 6144;
inline constexpr size_t kSparseMasksPrefetchDistance = 1024;

// Asks for every 64-byte line of the `bytes` bytes that start `distance` bytes after p.
template <size_t bytes, size_t distance = kPrefetchDistance>
inline void PrefetchAhead(const void* p) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  for (size_t line = 0; line < bytes; line += 64)
    _mm_prefetch(static_cast<const char*>(p) + distance + line, _MM_HINT_T0);
#else
  (void)p;
#endif
}

}  // namespace smelt
