#pragma once
// Q4_1: blocks of 32 weights in 20 bytes = 5.0 bits/weight. Asymmetric 4-bit (scale + minimum):
//   x[j] = d * q[j] + m,  q in 0..15
// Nibble layout as Q4_0: qs[j] = weight j (low nibble) | weight j+16 (high nibble).
#include <cstdint>

#include "core/half.h"

namespace smelt {

inline constexpr int kQK4_1 = 32;

struct BlockQ4_1 {
  fp16_t d;                // scale
  fp16_t m;                // minimum
  uint8_t qs[kQK4_1 / 2];  // 4-bit codes, two per byte
};
static_assert(sizeof(BlockQ4_1) == 2 * 2 + kQK4_1 / 2, "Q4_1 block is 20 bytes");

void DequantizeRowQ4_1(const BlockQ4_1* x, float* y, int64_t k);
// Bit-exact with ggml's quantize_row_q4_1_ref: m = min, d = (max - min) / 15.
void QuantizeRowQ4_1Ref(const float* x, BlockQ4_1* y, int64_t k);

}  // namespace smelt
