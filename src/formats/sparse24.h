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

// s24_w4a8: 2:4 int4 weights against per-token int8 activations (as w8a8 is to i8_pc), laid
// out for a 64-byte register: a row is an f32 header c, then blocks of 128 weights (32 groups of
// 4, 64 kept values in "slots" s = 0..63), 52 bytes = 3.25 bits/weight (q4_0: 4.5):
//
//   d[2]     bf16 scales: d[0] for the kept values of weights 0..63, d[1] for weights 64..127
//   idx[16]  slot s's position in its group, p_s in 0..3: bits 2·(s % 4) of idx[I(s)],
//            I(s) = 8·((s / 8) % 2) + 2·(s / 16) + (s / 4) % 2 (so the 16 index bits of slots
//            8q .. 8q + 7 lie at bit 16·(q / 2) of the 8-byte half q % 2: read twice into a
//            64-byte register, every 8-byte lane finds its slots' bits in itself)
//   qs[32]   slot s's code q_s in −8..7 as a two's-complement nibble: the low nibble of qs[s]
//            for s < 32, the high nibble of qs[s − 32] otherwise
//
// Slot s belongs to group G(s) = 16·h + 2·(s / 8) + (s / 2) % 2 with half h = (s / 4) % 2, and
// stands for weight 4·G(s) + p_s of the block, value d[h]·q_s. So the 4 slots of every 4-byte
// lane share one scale (lanes alternate between the halves) and byte permutes over the 128
// activation bytes gather each slot's activation in place. The header c is Σ over the row's
// blocks in order, and over h = 0, 1, of d[h]·Σ_{slots of h} q_s (each code sum converted to f32,
// one product and one addition per half): the kernels take 128·c off an unsigned-activation sum
// instead of offsetting the codes (kernels/qdot.h). It follows from the blocks, and readers check
// it (S24W4A8RowConsistent).
//
// from_float keeps the 2 values of largest magnitude of every group of 4 (as s24_q4, in position
// order: slot 2t of a group's pair the lower position), then per half the scale of q4_0 (d = the
// kept value of largest magnitude / −8, rounded to bf16) and q = round(x / d) clamped to −8..7.
inline constexpr int kQKS24W4 = 128;

struct BlockS24W4 {
  uint16_t d[2];    // bf16
  uint8_t idx[16];
  uint8_t qs[32];
};
static_assert(sizeof(BlockS24W4) == 52, "s24_w4a8 block is 52 bytes");

struct RowHeaderS24W4 {
  float c;
};
static_assert(sizeof(RowHeaderS24W4) == 4, "s24_w4a8 row header is one f32");

// The group (0..31) of slot s (0..63) of a BlockS24W4, and its half (the scale it takes).
inline constexpr int S24W4Group(int s) { return 16 * ((s >> 2) & 1) + 2 * (s >> 3) + ((s >> 1) & 1); }
inline constexpr int S24W4Half(int s) { return (s >> 2) & 1; }
// The slot of member j (0, 1) of group G's pair: S24W4Group's inverse.
inline constexpr int S24W4PairSlot(int G, int j) { return 8 * ((G % 16) / 2) + 4 * (G / 16) + 2 * (G % 2) + j; }
static_assert([] {
  for (int s = 0; s < 64; ++s)
    if (S24W4PairSlot(S24W4Group(s), s % 2) != s) return false;
  return true;
}());
inline constexpr int S24W4IndexByte(int s) { return 8 * ((s >> 3) & 1) + 2 * (s >> 4) + ((s >> 2) & 1); }
inline int S24W4Position(const BlockS24W4& b, int s) {
  return 4 * S24W4Group(s) + ((b.idx[S24W4IndexByte(s)] >> (2 * (s & 3))) & 3);
}
inline int S24W4Code(const BlockS24W4& b, int s) {
  const int nibble = s < 32 ? b.qs[s] & 0x0F : b.qs[s - 32] >> 4;
  return nibble >= 8 ? nibble - 16 : nibble;
}

// The 4 positions of an index byte as 4 bytes (p_{4k} in the low byte): what a kernel adds to the
// groups' first weights.
inline constexpr uint32_t S24W4SpreadIndexByte(int byte) {
  uint32_t v = 0;
  for (int j = 0; j < 4; ++j) v |= (uint32_t)((byte >> (2 * j)) & 3) << (8 * j);
  return v;
}

// Whole rows (header included), as the per-channel types: n a multiple of 128.
void DequantizeRowS24W4A8(const void* row, float* y, int64_t n);
void QuantizeRowS24W4A8(const float* x, void* row, int64_t n);
// The header c of a row of n weights as the blocks define it.
float S24W4A8CodeSum(const void* row, int64_t n);
// Whether a row's header is its blocks' c, bit for bit (what a reader checks).
bool S24W4A8RowConsistent(const void* row, int64_t n);

void DequantizeRowS24Q8(const BlockS24Q8* x, float* y, int64_t n);
void QuantizeRowS24Q8(const float* x, BlockS24Q8* y, int64_t n);
void DequantizeRowS24Q4(const BlockS24Q4* x, float* y, int64_t n);
void QuantizeRowS24Q4(const float* x, BlockS24Q4* y, int64_t n);

}  // namespace smelt
