#pragma once
// Q5_0: blocks of 32 weights in 22 bytes = 5.5 bits/weight. Symmetric 5-bit:
//   x[j] = d * (q[j] - 16),  q in 0..31
// The low 4 bits are packed as in Q4_0 (qs[j] = weight j | weight j+16 << 4); the fifth bit of
// weight j is bit j of the little-endian 32-bit word qh.
#include <cstdint>

#include "core/half.h"

namespace smelt {

inline constexpr int kQK5_0 = 32;

struct BlockQ5_0 {
  fp16_t d;                // scale
  uint8_t qh[4];           // fifth bits, weight j at bit j (little-endian u32)
  uint8_t qs[kQK5_0 / 2];  // low 4 bits, two per byte
};
static_assert(sizeof(BlockQ5_0) == 2 + 4 + kQK5_0 / 2, "Q5_0 block is 22 bytes");

void DequantizeRowQ5_0(const BlockQ5_0* x, float* y, int64_t k);
// Bit-exact with ggml's quantize_row_q5_0_ref: d = (the value of largest magnitude) / -16.
void QuantizeRowQ5_0Ref(const float* x, BlockQ5_0* y, int64_t k);

// The 32 fifth bits as one word (byte order independent of the host).
inline uint32_t LoadQh(const uint8_t qh[4]) {
  return (uint32_t)qh[0] | ((uint32_t)qh[1] << 8) | ((uint32_t)qh[2] << 16) | ((uint32_t)qh[3] << 24);
}
inline void StoreQh(uint32_t v, uint8_t qh[4]) {
  for (int i = 0; i < 4; ++i) qh[i] = (uint8_t)(v >> (8 * i));
}

}  // namespace smelt
