#pragma once
// Q4_0: blocks of 32 weights in 18 bytes = 4.5 bits/weight. Symmetric 4-bit:
//   x[j] = d * (q[j] - 8),  q in 0..15
// Nibble layout: qs[j] holds weight j in its low nibble and weight j+16 in its high nibble.
#include <cstdint>

#include "core/half.h"

namespace smelt {

inline constexpr int kQK4_0 = 32;

struct BlockQ4_0 {
  fp16_t d;                // scale
  uint8_t qs[kQK4_0 / 2];  // 4-bit codes, two per byte
};
static_assert(sizeof(BlockQ4_0) == 2 + kQK4_0 / 2, "Q4_0 block is 18 bytes");

// y[k] <- x[k / 32]; k a multiple of 32.
void DequantizeRowQ4_0(const BlockQ4_0* x, float* y, int64_t k);
// Bit-exact with ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8.
void QuantizeRowQ4_0Ref(const float* x, BlockQ4_0* y, int64_t k);

}  // namespace smelt
