#pragma once
// Group-wise integers with fp16 scales: the layout of GPTQ/AWQ checkpoints (one scale, and for
// the asymmetric kind one offset, per group of `Group` consecutive weights of a row), stored as
// smelt-native GGUF types (ids 1024+, see core/tensor.h). One template over (bits, symmetric,
// group) implements all 18 types i{4,3,2}{s,a}_g{32,64,128}.
//
//   symmetric  (i<b>s): x = d · q,      q in −2^(b−1) .. 2^(b−1)−1, stored as q + 2^(b−1)
//   asymmetric (i<b>a): x = d · q + m,  q in 0 .. 2^b−1 (m is an fp16 offset, usually the
//                       group's minimum; GPTQ's d·(q − z) with integer z is the special case
//                       m = −d·z, so GPTQ/AWQ groups convert exactly up to fp16 rounding)
//
// Codes are packed densely (formats/bitpack.h): bits·Group/8 bytes, so int3 really costs 3 bits
// per weight plus the scale(s): e.g. i3s_g128 = (2 + 48) bytes / 128 = 3.125 bits/weight.
//
// from_float is round to nearest with the natural scale: symmetric, the value of largest
// magnitude maps to −2^(b−1) (Q4_0's convention, which uses all 2^b levels: the extreme lands
// exactly on a level, and only values of the opposite sign beyond (2^(b−1)−½)·|d| are clamped);
// asymmetric, [min, max] maps onto [0, 2^b−1] (Q4_1's). Codes are chosen for the fp16-rounded
// scale(s), so the per-element error is at most half a step wherever no clamping happens.
// from_float_weighted is the importance-weighted MSE search of formats/scale_search.h.
#include <cstdint>

#include "core/half.h"
#include "core/tensor.h"

namespace smelt {

template <int Bits, bool Symmetric, int Group>
struct BlockGroupInt {
  static_assert(Bits >= 2 && Bits <= 8 && Group % 8 == 0 && Group <= 256);
  static constexpr int kBits = Bits, kGroup = Group;
  static constexpr bool kSymmetric = Symmetric;
  fp16_t dm[Symmetric ? 1 : 2];  // d, and for the asymmetric kind the offset m
  uint8_t qs[Bits * Group / 8];  // dense little-endian codes (formats/bitpack.h)
};
static_assert(sizeof(BlockGroupInt<3, true, 32>) == 2 + 12, "i3s_g32 block is 14 bytes");
static_assert(sizeof(BlockGroupInt<4, false, 128>) == 4 + 64, "i4a_g128 block is 68 bytes");
static_assert(sizeof(BlockGroupInt<2, true, 64>) == 2 + 16, "i2s_g64 block is 18 bytes");

// The codec of one span of n weights sharing d (and m): a group here, a whole row in the
// per-channel types (formats/per_channel.h). Codes are the stored values q − kLo (0..2^b−1),
// unpacked; Decode reads them packed (formats/bitpack.h).
template <int Bits, bool Symmetric>
struct IntSpan {
  static constexpr int kLo = Symmetric ? -(1 << (Bits - 1)) : 0;           // smallest level
  static constexpr int kHi = Symmetric ? (1 << (Bits - 1)) - 1 : (1 << Bits) - 1;  // largest
  static void Decode(const fp16_t* dm, const uint8_t* packed, int n, float* y);
  // Round to nearest with the natural scale (above).
  static void Encode(const float* x, int n, fp16_t* dm, uint8_t* codes);
  // Minimises Σ w (x − x̂)²; all-zero importances count as ones.
  static void EncodeWeighted(const float* x, const float* w, int n, fp16_t* dm, uint8_t* codes);
};

// The codec of one (bits, symmetric, group); instantiated in group_int.cc for the 18 types.
template <int Bits, bool Symmetric, int Group>
struct GroupInt {
  using Block = BlockGroupInt<Bits, Symmetric, Group>;
  using Span = IntSpan<Bits, Symmetric>;
  static constexpr int kLo = Span::kLo, kHi = Span::kHi;
  // y[k] <- x[k / Group]; k a multiple of Group.
  static void Dequantize(const Block* x, float* y, int64_t k);
  // Round to nearest with the natural scale (above).
  static void Quantize(const float* x, Block* y, int64_t k);
  // Minimises Σ w (x − x̂)² per group; a group whose importances are all zero uses ones.
  static void QuantizeWeighted(const float* x, const float* w, Block* y, int64_t k);
};

// The group types i{4,3,2}{s,a}_g{32,64,128} as ggml's blocks of 32, weight for weight: the
// symmetric ones are Q4_0 blocks (value d·q, q their signed level stored as the nibble q + 8), the
// asymmetric ones Q4_1 blocks (value d·q + m), each group's fp16 d (and m) repeated in its G/32
// blocks and its codes moved into ggml's nibble order (qs[j]: weight j low, j + 16 high). The
// runtime runs them on those types' kernels against int8 activations (formats/activation.h).
inline constexpr DType kGroupIntTypes[] = {
    DType::kI4S_G32, DType::kI4S_G64, DType::kI4S_G128, DType::kI4A_G32, DType::kI4A_G64, DType::kI4A_G128,
    DType::kI3S_G32, DType::kI3S_G64, DType::kI3S_G128, DType::kI3A_G32, DType::kI3A_G64, DType::kI3A_G128,
    DType::kI2S_G32, DType::kI2S_G64, DType::kI2S_G128, DType::kI2A_G32, DType::kI2A_G64, DType::kI2A_G128};
// kQ4_0 for the symmetric group types, kQ4_1 for the asymmetric ones, kF32 for any other type (the
// ids run in the order above: bits 4, 3, 2, each symmetric then asymmetric, groups 32, 64, 128).
constexpr DType GroupIntGgmlType(DType type) {
  const int i = (int)type - (int)DType::kI4S_G32;
  if (i < 0 || i >= 18) return DType::kF32;
  return (i / 3) % 2 == 0 ? DType::kQ4_0 : DType::kQ4_1;
}
static_assert([] {
  for (int i = 0; i < 18; ++i)
    if ((int)kGroupIntTypes[i] != (int)DType::kI4S_G32 + i) return false;
  return GroupIntGgmlType(DType::kI3S_G64) == DType::kQ4_0 && GroupIntGgmlType(DType::kI2A_G128) == DType::kQ4_1;
}());
// Row `row` (n weights of `type`, n a multiple of its group) as n / 32 blocks of
// GroupIntGgmlType(type) at `blocks`.
void GroupIntRowAsGgml(DType type, const void* row, int64_t n, void* blocks);

}  // namespace smelt
