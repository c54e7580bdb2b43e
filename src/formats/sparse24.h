#pragma once
// 2:4 structured sparsity (NVIDIA's Ampere pattern): in every group of 4 consecutive weights of a
// row at most 2 are non-zero. A block of 32 weights (8 groups) stores only the 16 kept values,
// which of the 4 positions each one sits at (2 bits), and one fp16 scale:
//
//   s24_q8  fp16 d, 4 index bytes, 16 int8 codes:        22 bytes = 5.5 bits/weight
//           kept value k = d · q_k,        q_k in −127..127 (−128 never written)
//   s24_q4  fp16 d, 4 index bytes, 8 bytes of nibbles:   14 bytes = 3.5 bits/weight
//           kept value k = d · (c_k − 8),  c_k in 0..15 (q4_0's grid)
//
// Kept value k (0..15) belongs to group k / 2 (weights 4·(k/2) .. 4·(k/2) + 3); its position in
// the group, p_k in 0..3, is bits 2·(k / 4) of index byte k % 4 (so a 32-bit load of the index
// bytes shifted right by 2·s holds p_{4s..4s+3} in its four bytes' low bits). The encoder writes
// p_{2g} < p_{2g+1}; the decoder accepts any pattern and adds the two values where both name the
// same position. s24_q4's code k is the low nibble of qs[k] for k < 8, the high nibble of
// qs[k − 8] otherwise.
//
// from_float keeps, in each group of 4, the 2 values of largest magnitude (ties: the lower
// position): magnitude selection. An input that is already 2:4 sparse keeps its non-zero
// positions exactly; zero stays exactly zero (code 0, resp. 8). The scale is that of q8_0
// (d = max|kept| / 127) or q4_0 (d = the kept value of largest magnitude / −8), taken over the 16
// kept values.
#include <cstdint>

#include "core/half.h"

namespace smelt {

inline constexpr int kQKS24 = 32;

struct BlockS24Q8 {
  fp16_t d;
  uint8_t idx[4];  // 2-bit positions of the 16 kept values
  int8_t qs[16];
};
static_assert(sizeof(BlockS24Q8) == 22, "s24_q8 block is 22 bytes");

struct BlockS24Q4 {
  fp16_t d;
  uint8_t idx[4];
  uint8_t qs[8];  // 4-bit codes, offset 8
};
static_assert(sizeof(BlockS24Q4) == 14, "s24_q4 block is 14 bytes");

// Position (0..31) in its block of kept value k of a block with index bytes idx.
inline int S24Position(const uint8_t* idx, int k) { return 4 * (k / 2) + ((idx[k % 4] >> (2 * (k / 4))) & 3); }
// The signed integer of kept value k (value = d · code).
inline int S24Code(const BlockS24Q8& b, int k) { return b.qs[k]; }
inline int S24Code(const BlockS24Q4& b, int k) { return (k < 8 ? b.qs[k] & 0x0F : b.qs[k - 8] >> 4) - 8; }

void DequantizeRowS24Q8(const BlockS24Q8* x, float* y, int64_t n);
void QuantizeRowS24Q8(const float* x, BlockS24Q8* y, int64_t n);
void DequantizeRowS24Q4(const BlockS24Q4* x, float* y, int64_t n);
void QuantizeRowS24Q4(const float* x, BlockS24Q4* y, int64_t n);

}  // namespace smelt
