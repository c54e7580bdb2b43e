#pragma once
// The k-quants: super-blocks of kQK_K = 256 weights split into sub-blocks that each carry a
// small quantized scale (and for the asymmetric ones a quantized minimum), with fp16 super-block
// scales on top. Layouts are ggml's, byte for byte.
//
//   Q2_K  84 bytes  2.625 bits/weight  16 x 16; x = d*sc*q - dmin*m, q 0..3, sc/m 4-bit
//   Q3_K 110 bytes  3.4375 bits/weight 16 x 16; x = d*(sc-32)*(q-4), q 0..7 (2 bits in qs,
//                                      1 in hmask), sc 6-bit packed in 12 bytes
//   Q4_K 144 bytes  4.5 bits/weight    8 x 32;  x = d*sc*q - dmin*m, q 0..15, sc/m 6-bit
//   Q5_K 176 bytes  5.5 bits/weight    8 x 32;  as Q4_K with a fifth bit in qh, q 0..31
//   Q6_K 210 bytes  6.5625 bits/weight 16 x 16; x = d*sc*(q-32), q 0..63 (4 bits in ql, 2 in
//                                      qh), sc int8
//   Q8_K 292 bytes  9.125 bits/weight  x = d*q (f32 d, int8 q) + per-16 sums: an activation
//                                      format for dot products, never stored in model files
//
// Code ordering, shared by Q2_K/Q3_K (2-bit planes) : weight e of a super-block, with
// h = e / 128, r = e % 128, lives in byte qs[32*h + r % 32] at bits 2*(r / 32).
// Q4_K/Q5_K (nibbles): with c = e / 64, r = e % 64, weight e is in qs[32*c + r % 32], low nibble
// for r < 32, high nibble otherwise; Q5_K's fifth bit is bit (2*c + r / 32) of qh[r % 32].
// Q3_K's third bit is bit (e / 32) of hmask[e % 32] (set means +0, clear means -4).
#include <cstdint>

#include "core/half.h"

namespace smelt {

inline constexpr int kQK_K = 256;        // weights per super-block
inline constexpr int kKScaleSize = 12;   // bytes of packed 6-bit scales (Q3_K, Q4_K, Q5_K)

struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // per 16 weights: low nibble scale, high nibble min
  uint8_t qs[kQK_K / 4];       // 2-bit codes
  fp16_t d;                    // super-block scale of the scales
  fp16_t dmin;                 // super-block scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 2 * 2 + kQK_K / 16 + kQK_K / 4, "Q2_K block is 84 bytes");

struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];     // third (high) bit of each code
  uint8_t qs[kQK_K / 4];        // low 2 bits of each code
  uint8_t scales[kKScaleSize];  // 16 6-bit scales (see Q3KScale)
  fp16_t d;                     // super-block scale
};
static_assert(sizeof(BlockQ3_K) == 2 + kQK_K / 4 + kQK_K / 8 + 12, "Q3_K block is 110 bytes");

struct BlockQ4_K {
  fp16_t d;                     // super-block scale of the scales
  fp16_t dmin;                  // super-block scale of the mins
  uint8_t scales[kKScaleSize];  // 8 6-bit scales + 8 6-bit mins (see GetScaleMinK4)
  uint8_t qs[kQK_K / 2];        // 4-bit codes
};
static_assert(sizeof(BlockQ4_K) == 2 * 2 + kKScaleSize + kQK_K / 2, "Q4_K block is 144 bytes");

struct BlockQ5_K {
  fp16_t d;                     // super-block scale of the scales
  fp16_t dmin;                  // super-block scale of the mins
  uint8_t scales[kKScaleSize];  // as Q4_K
  uint8_t qh[kQK_K / 8];        // fifth bit of each code
  uint8_t qs[kQK_K / 2];        // low 4 bits of each code
};
static_assert(sizeof(BlockQ5_K) == 2 * 2 + kKScaleSize + kQK_K / 2 + kQK_K / 8,
              "Q5_K block is 176 bytes");

struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];      // low 4 bits of each code
  uint8_t qh[kQK_K / 4];      // high 2 bits of each code
  int8_t scales[kQK_K / 16];  // per 16 weights
  fp16_t d;                   // super-block scale
};
static_assert(sizeof(BlockQ6_K) == 2 + kQK_K / 16 + 3 * kQK_K / 4, "Q6_K block is 210 bytes");

struct BlockQ8_K {
  float d;                     // scale
  int8_t qs[kQK_K];            // codes
  int16_t bsums[kQK_K / 16];   // sum of each 16 codes
};
static_assert(sizeof(BlockQ8_K) == 4 + kQK_K + kQK_K / 16 * 2, "Q8_K block is 292 bytes");

// The 6-bit scale `sc` and min `m` of sub-block j (0..7) of Q4_K/Q5_K: sub-blocks 0..3 keep
// them in the low 6 bits of bytes j and j+4; sub-blocks 4..7 keep their low 4 bits in the
// nibbles of byte j+4 and their top 2 bits in the top bits of bytes j-4 (scale) and j (min).
void GetScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m);
// The signed scale (-32..31) of sub-block j (0..15) of Q3_K: low 4 bits in the nibbles of
// bytes 0..7 (j < 8 low nibble of byte j, else high nibble of byte j-8), top 2 bits at bits
// 2*(j/4) of byte 8 + j%4; stored with a +32 offset.
int Q3KScale(const uint8_t* scales, int j);

// Decoders: y[k] from x[k / 256]; k a multiple of 256. Arithmetic order is ggml's, so results are
// bit-identical to ggml's dequantize_row_*.
void DequantizeRowQ2_K(const BlockQ2_K* x, float* y, int64_t k);
void DequantizeRowQ3_K(const BlockQ3_K* x, float* y, int64_t k);
void DequantizeRowQ4_K(const BlockQ4_K* x, float* y, int64_t k);
void DequantizeRowQ5_K(const BlockQ5_K* x, float* y, int64_t k);
void DequantizeRowQ6_K(const BlockQ6_K* x, float* y, int64_t k);
void DequantizeRowQ8_K(const BlockQ8_K* x, float* y, int64_t k);

// Reference quantizers (no importance matrix), bit-exact with ggml's quantize_row_*_ref (which
// is also what llama-quantize writes when given no imatrix). Implemented in k_quants_ref.cc.
void QuantizeRowQ2_KRef(const float* x, BlockQ2_K* y, int64_t k);
void QuantizeRowQ3_KRef(const float* x, BlockQ3_K* y, int64_t k);
void QuantizeRowQ4_KRef(const float* x, BlockQ4_K* y, int64_t k);
void QuantizeRowQ5_KRef(const float* x, BlockQ5_K* y, int64_t k);
void QuantizeRowQ6_KRef(const float* x, BlockQ6_K* y, int64_t k);
// The same bytes as the Ref functions above, faster: the per-sub-block searches run on AVX2
// (one sub-block per SIMD lane, k_quants_avx2.cc) where the CPU has it. These are the format
// table's from_float.
void QuantizeRowQ2_K(const float* x, BlockQ2_K* y, int64_t k);
void QuantizeRowQ3_K(const float* x, BlockQ3_K* y, int64_t k);
void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t k);
void QuantizeRowQ5_K(const float* x, BlockQ5_K* y, int64_t k);
void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t k);
// Q8_K: iscale = -127 / (value of largest magnitude), q = min(127, round-half-even(x*iscale)).
// ggml leaves bsums unwritten for an all-zero block; smelt writes zeros there.
void QuantizeRowQ8_KRef(const float* x, BlockQ8_K* y, int64_t k);

}  // namespace smelt
