#pragma once
// Q8_0 and Q8_1: 8-bit blocks of 32 weights.
//   Q8_0: 34 bytes = 8.5 bits/weight,  x[j] = d * q[j],  q in -127..127
//   Q8_1: 36 bytes = 9.0 bits/weight,  same codes plus s = d * sum(q), which ggml uses as the
//         activation side of dot products with Q4_1/Q5_1 (it has no dequantizer in ggml; smelt
//         decodes it as d * q).
#include <cstdint>

#include "core/half.h"

namespace smelt {

inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;

struct BlockQ8_0 {
  fp16_t d;            // scale
  int8_t qs[kQK8_0];   // codes
};
static_assert(sizeof(BlockQ8_0) == 2 + kQK8_0, "Q8_0 block is 34 bytes");

struct BlockQ8_1 {
  fp16_t d;            // scale
  fp16_t s;            // d * sum(qs)
  int8_t qs[kQK8_1];   // codes
};
static_assert(sizeof(BlockQ8_1) == 2 * 2 + kQK8_1, "Q8_1 block is 36 bytes");

void DequantizeRowQ8_0(const BlockQ8_0* x, float* y, int64_t k);
// Bit-exact with ggml's quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d).
void QuantizeRowQ8_0Ref(const float* x, BlockQ8_0* y, int64_t k);

void DequantizeRowQ8_1(const BlockQ8_1* x, float* y, int64_t k);
// Bit-exact with ggml's quantize_row_q8_1_ref.
void QuantizeRowQ8_1Ref(const float* x, BlockQ8_1* y, int64_t k);

}  // namespace smelt
