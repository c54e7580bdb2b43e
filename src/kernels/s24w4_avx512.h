#pragma once
// The AVX-512 steps that read one s24_w4a8 block of 128 (formats/sparse24.h), shared by its row
// dot (kernels/qdot_avx512.cc) and its AMX prompt kernel (kernels/w8a8_amx.cc). Header-only; each
// function carries its own target attribute (AVX-512 BW, VBMI, GFNI), which its callers' include.
#include <immintrin.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "formats/sparse24.h"

#define SMELT_S24W4_TARGET __attribute__((target("avx2,avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,gfni")))

namespace smelt::s24w4 {

// Loaded once per call, outside the block loop.
struct Tables {
  __m512i shifts;  // lane q's byte j takes bits 16·(q / 2) + 2j of its 8 bytes (I(s))
  __m512i base;    // slot s: 4·G(s), the first column of its group
  __m512i three;
};
SMELT_S24W4_TARGET inline Tables LoadTables() {
  alignas(64) static constexpr std::array<uint8_t, 64> kGroupBase = [] {
    std::array<uint8_t, 64> t{};
    for (int s = 0; s < 64; ++s) t[s] = (uint8_t)(4 * S24W4Group(s));
    return t;
  }();
  return {_mm512_set_epi64(0x3E3C3A3836343230LL, 0x3E3C3A3836343230LL, 0x2E2C2A2826242220LL, 0x2E2C2A2826242220LL,
                           0x1E1C1A1816141210LL, 0x1E1C1A1816141210LL, 0x0E0C0A0806040200LL, 0x0E0C0A0806040200LL),
          _mm512_load_si512(kGroupBase.data()), _mm512_set1_epi8(3)};
}

// The 64 slots' columns in the block (0..127): the index bytes read twice, one 2-bit position per
// byte by vpmultishiftqb, the group's first column added by one ternary-logic step.
SMELT_S24W4_TARGET inline __m512i Positions(const Tables& t, const uint8_t* blk) {
  const __m512i spread =
      _mm512_broadcast_i64x2(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(BlockS24W4, idx))));
  return _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(t.shifts, spread), t.three, t.base, 0xEA);
}

// The 32 code bytes read twice (slots 0..31 from the low nibbles, 32..63 from the high ones).
SMELT_S24W4_TARGET inline __m512i CodeBytes(const uint8_t* blk) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(BlockS24W4, qs))));
}
// GF(2) bit matrices for vgf2p8affineqb, per 8-byte lane: the slots' codes as 16·q (the nibble
// moved to the high half of the byte, where a two's-complement nibble is 16·q as an int8) ...
SMELT_S24W4_TARGET inline __m512i Times16Matrix() {
  return _mm512_set_epi64(0x10204080, 0x10204080, 0x10204080, 0x10204080, 0x01020408, 0x01020408, 0x01020408,
                          0x01020408);
}
// ... or as q, sign-extended (bit 3 of the nibble copied up).
SMELT_S24W4_TARGET inline __m512i SignExtendMatrix() {
  return _mm512_set_epi64(0x1020408080808080LL, 0x1020408080808080LL, 0x1020408080808080LL, 0x1020408080808080LL,
                          0x0102040808080808LL, 0x0102040808080808LL, 0x0102040808080808LL, 0x0102040808080808LL);
}
SMELT_S24W4_TARGET inline __m512i Codes(const uint8_t* blk, __m512i matrix) {
  return _mm512_gf2p8affine_epi64_epi8(CodeBytes(blk), matrix, 0);
}

}  // namespace smelt::s24w4

#undef SMELT_S24W4_TARGET
