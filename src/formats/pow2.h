#pragma once
// Power-of-two (log2) weights: blocks of 32 weights in 18 bytes = 4.5 bits/weight, each weight
// ±d·2^−e, so dequantization (and a product with an integer activation) is a shift. 4-bit code
// c = (s << 3) | k, packed two per byte (code 2i in the low nibble, formats/bitpack.h):
//   k = 0..6:  x = (s ? −1 : +1) · d · 2^−k     (levels ±1, ±1/2, ..., ±1/64 times d)
//   k = 7:     x = 0                            (c = 7 is the zero code; c = 15, "−0", also
//                                                decodes to 0 but the encoder never writes it)
// d = the block's max |x| (fp16), so the extreme value is exact up to fp16 rounding. The 15
// levels are geometric, so the relative error is bounded (≤ 1/3 between neighbouring powers)
// down to d/64; smaller magnitudes round to 0 or ±d/64.
// from_float picks the nearest level (linear distance); from_float_weighted searches the scale
// (formats/scale_search.h) over the same 15 levels.
#include <cstdint>

#include "core/half.h"

namespace smelt {

inline constexpr int kQKPow2 = 32;
inline constexpr int kPow2MaxShift = 6;  // smallest non-zero level: 2^−6
inline constexpr uint8_t kPow2ZeroCode = 7;

struct BlockPow2 {
  fp16_t d;                 // block max |x|
  uint8_t qs[kQKPow2 / 2];  // sign + shift codes, two per byte
};
static_assert(sizeof(BlockPow2) == 2 + kQKPow2 / 2, "pow2 block is 18 bytes");

// The value of code c (0..15) for d = 1.
float Pow2Level(uint8_t c);

void DequantizeRowPow2(const BlockPow2* x, float* y, int64_t k);
void QuantizeRowPow2(const float* x, BlockPow2* y, int64_t k);
void QuantizeRowPow2Weighted(const float* x, const float* w, BlockPow2* y, int64_t k);

}  // namespace smelt
