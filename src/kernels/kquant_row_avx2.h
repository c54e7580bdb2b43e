#pragma once
// The piece of the Q3_K row dot that its AVX2 twin (qdot_avx2.cc) and AVX-512 twin
// (qdot_avx512.cc) share, so that both compute the same integers. Include
// after <immintrin.h>, from files whose callers carry AVX2 (or wider) target attributes.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cstdint>
#include <cstring>


namespace smelt::kquant_row {

// Q3_K's 16 6-bit scales (Q3KScale of formats/k_quants.h), four at a time in 32-bit words: with
// the 12 scale bytes as words u0, u1, u2, scale j has its low 4 bits in the low (j < 8) or high
// (j >= 8) nibble of byte j % 8 and its top 2 bits at bit 2·(j / 4) of byte 8 + j % 4; stored
// with an offset of 32. Returned as 16 int16 in order (the offset taken off).
__attribute__((target("avx2,fma,f16c"))) inline __m256i Q3Scales(const uint8_t* q) {
  uint32_t u[3];
  std::memcpy(u, q, sizeof u);
  const uint32_t nibble = 0x0F0F0F0F, top2 = 0x03030303;
  const __m128i words = _mm_setr_epi32((int)((u[0] & nibble) | (u[2] & top2) << 4),
                                       (int)((u[1] & nibble) | ((u[2] >> 2) & top2) << 4),
                                       (int)(((u[0] >> 4) & nibble) | ((u[2] >> 4) & top2) << 4),
                                       (int)(((u[1] >> 4) & nibble) | ((u[2] >> 6) & top2) << 4));
  return _mm256_sub_epi16(_mm256_cvtepu8_epi16(words), _mm256_set1_epi16(32));
}

}  // namespace smelt::kquant_row

#endif
