#pragma once
// Bit moves inside bytes that the AVX2-and-wider kernels share. Include after <immintrin.h>, from
// files whose callers carry AVX2 (or wider) target attributes.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

namespace smelt {

// Bit b (0..7) of every byte of v moved to bit 4 (the fifth bit of a 5-bit code), every other bit
// cleared: one shift of the 16-bit lanes by at most 4 places, so the bit that lands at bit 4 of a
// byte comes from the same byte, then one mask.
__attribute__((target("avx2,fma,f16c"))) inline __m256i BitToBit4(__m256i v, int b) {
  const __m256i moved = b <= 4 ? _mm256_slli_epi16(v, 4 - b) : _mm256_srli_epi16(v, b - 4);
  return _mm256_and_si256(moved, _mm256_set1_epi8(0x10));
}

}  // namespace smelt

#endif
