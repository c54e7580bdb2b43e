#pragma once
// Q4_K/Q5_K's 6-bit sub-block scales and minimums (GetScaleMinK4, formats/k_quants.h) decoded for
// 16 rows at once, for the AVX-512 twins that hold one row per 32-bit lane (the packed decode
// kernels, kernels/packed_kquant_avx512_body.h, and the AMX prompt kernel, kernels/kquant_amx.cc).
// Include only after <immintrin.h>, from files whose callers carry AVX-512 target attributes.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

namespace smelt {

// s0, s1, s2: bytes 0..3, 4..7 and 8..11 of each row's 12 scale bytes, row r in lane r. Byte i of
// a row's lane in sc[0] / m[0] is sub-block i's scale / minimum, in sc[1] / m[1] sub-block 4 + i's.
__attribute__((target("avx2,avx512f,avx512bw"))) inline void ScalesMinsK4x16(__m512i s0, __m512i s1, __m512i s2,
                                                                              __m512i* sc, __m512i* m) {
  const __m512i nibble = _mm512_set1_epi8(0x0F), six = _mm512_set1_epi8(0x3F), top = _mm512_set1_epi8(0x30);
  sc[0] = _mm512_and_si512(s0, six);
  sc[1] = _mm512_or_si512(_mm512_and_si512(s2, nibble), _mm512_and_si512(_mm512_srli_epi16(s0, 2), top));
  m[0] = _mm512_and_si512(s1, six);
  m[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(s2, 4), nibble), _mm512_and_si512(_mm512_srli_epi16(s1, 2), top));
}

}  // namespace smelt

#endif
