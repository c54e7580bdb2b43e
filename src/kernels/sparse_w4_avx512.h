#pragma once
// The AVX-512 piece of sp70_w4a8 (formats/sparse_mask.h) that its row dot (qdot_avx512.cc) and
// its AMX prompt kernel (w8a8_amx.cc) share: a chunk of 64 stored weights' codes (their runs'
// multipliers: sparse_w4::RunMultipliers, kernels/sparse_w4.h). Include after <immintrin.h>, from files whose callers carry AVX-512 BW (or wider)
// target attributes.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "formats/sparse_mask.h"

#define SMELT_SPARSE_W4_512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))

namespace smelt::sparse_w4 {

// Codes first .. first + 63 (first a multiple of 64: one chunk, formats/sparse_mask.h) as signed
// bytes: the chunk's 32 bytes in both halves of a register, the upper half shifted by 4, masked,
// − 8. A row's shorter last chunk (L = 16, 32 or 48 codes in L/2 bytes) is read masked and its
// upper codes moved down from lane 32 to lane L/2 through a small buffer (once per row).
SMELT_SPARSE_W4_512 inline __m512i Codes64(const SparseMaskW4RowView& r, int64_t first) {
  const int64_t len = std::min<int64_t>(64, r.capacity - first);
  const __m512i shifts = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  const __m256i bytes = len == 64 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.codes + first / 2))
                                  : _mm256_maskz_loadu_epi8((__mmask32)((1u << (len / 2)) - 1), r.codes + first / 2);
  const __m512i codes = _mm512_sub_epi8(
      _mm512_and_si512(_mm512_srlv_epi16(_mm512_broadcast_i64x4(bytes), shifts), _mm512_set1_epi8(0x0F)),
      _mm512_set1_epi8(8));
  if (len == 64) return codes;
  alignas(64) int8_t moved[96];
  _mm512_store_si512(moved, codes);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(moved + len / 2), _mm512_extracti64x4_epi64(codes, 1));
  return _mm512_load_si512(moved);
}

}  // namespace smelt::sparse_w4

#undef SMELT_SPARSE_W4_512

#endif
