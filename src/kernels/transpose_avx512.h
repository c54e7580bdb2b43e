#pragma once
// A 16 × 16 transpose of 32-bit lanes in sixteen 512-bit registers, for the AVX-512/AMX twins that
// turn rows into the tile unit's column groups (kernels/half_gemm_amx.cc, kquant_amx.cc, w8a8_amx.cc).
// Include only after <immintrin.h>, from files whose callers carry AVX-512 target attributes.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cstdint>

namespace smelt {

// r[i] := column i of the 16 × 16 matrix of 32-bit lanes whose rows are r[0..15].
__attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl,avx512bw"))) inline void Transpose16(__m512i* r) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);      // per 128 bits: a0 b0 a1 b1
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);  // a2 b2 a3 b3
  }
  for (int i = 0; i < 4; ++i) {  // u[4i + e], 128-bit lane L: rows 4i .. 4i+3 at column 4L + e
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int e = 0; e < 4; ++e) {
    const __m512i x0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x88), x1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xDD);
    const __m512i y0 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x88);
    const __m512i y1 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xDD);
    r[e] = _mm512_shuffle_i32x4(x0, y0, 0x88);
    r[4 + e] = _mm512_shuffle_i32x4(x1, y1, 0x88);
    r[8 + e] = _mm512_shuffle_i32x4(x0, y0, 0xDD);
    r[12 + e] = _mm512_shuffle_i32x4(x1, y1, 0xDD);
  }
}


// z transposed, its 16 rows stored 64 bytes apart at dst: 16 rows of 16 four-byte groups become
// the tile unit's column order (tile row k: group k of every row).
__attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl,avx512bw"))) inline void StoreTransposed16(__m512i* z,
                                                                                                    uint8_t* dst) {
  Transpose16(z);
  for (int k = 0; k < 16; ++k) _mm512_storeu_si512(dst + 64 * k, z[k]);
}

}  // namespace smelt

#endif
