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

// Asks for every 64-byte line of the `bytes` bytes that start kPrefetchDistance after p.
template <size_t bytes>
inline void PrefetchAhead(const void* p) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  for (size_t line = 0; line < bytes; line += 64)
    _mm_prefetch(static_cast<const char*>(p) + kPrefetchDistance + line, _MM_HINT_T0);
#else
  (void)p;
#endif
}

}  // namespace smelt
