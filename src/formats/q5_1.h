#pragma once
// Q5_1: blocks of 32 weights in 24 bytes = 6.0 bits/weight. Asymmetric 5-bit:
//   x[j] = d * q[j] + m,  q in 0..31
// Bit layout as Q5_0 (low nibbles in qs, fifth bits in the little-endian word qh).
#include <cstdint>

#include "core/half.h"

namespace smelt {

inline constexpr int kQK5_1 = 32;

struct BlockQ5_1 {
  fp16_t d;                // scale
  fp16_t m;                // minimum
  uint8_t qh[4];           // fifth bits, weight j at bit j (little-endian u32)
  uint8_t qs[kQK5_1 / 2];  // low 4 bits, two per byte
};
static_assert(sizeof(BlockQ5_1) == 2 * 2 + 4 + kQK5_1 / 2, "Q5_1 block is 24 bytes");

void DequantizeRowQ5_1(const BlockQ5_1* x, float* y, int64_t k);
// Bit-exact with ggml's quantize_row_q5_1_ref: m = min, d = (max - min) / 31.
void QuantizeRowQ5_1Ref(const float* x, BlockQ5_1* y, int64_t k);

}  // namespace smelt
