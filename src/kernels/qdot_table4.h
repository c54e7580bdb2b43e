#pragma once
// Internals of the row dots of the weight-only 4-bit types against f32 activations (not a public
// API; kernels/qdot.h dispatches to them):
//
//   type                 group        header per group (or row)    value of code c (0..15)
//   i4s_pc               the row      fp16 d                       d · (c − 8)
//   i4a_pc               the row      fp16 d, fp16 m               d · c + m
//   km4_pc               the row      16 fp16 centroids            centroid[c]
//
// (The 4-bit group types i4s_g*/i4a_g* run as Q4_0/Q4_1 blocks against int8 activations instead:
// formats/group_int.h; nf4 as packed blocks of 32 with its levels in fixed point: kernels/packed.h.)
//
// Codes are packed densely, two per byte, code 2i in the low nibble (formats/bitpack.h). Every
// row's 16 values are one 16-entry f32 table, computed as the format's decoder computes them (the
// same f32 operations, so each looked-up value is the decoded weight's bits); the dot is then
// Σ table[c_j]·x_j. The reference (qdot.cc) decodes the row with the format's own to_float and sums
// in order; the SIMD twins differ from it only in the order of the f32 sum.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "core/dtype_list.h"
#include "core/half.h"
#include "core/tensor.h"
#include "kernels/qdot.h"

namespace smelt::table4 {

enum class Kind { kSymmetric, kAsymmetric, kCodebook };

// Group 0: the whole row shares one header (the per-channel types).
struct Layout {
  Kind kind;
  int group;
  int header;  // bytes before each group's codes, or at the start of the row
};

constexpr Layout LayoutOf(DType t) {
  switch (t) {
    case DType::kI4S_PC: return {Kind::kSymmetric, 0, 2};
    case DType::kI4A_PC: return {Kind::kAsymmetric, 0, 4};
    case DType::kKM4_PC: return {Kind::kCodebook, 0, 32};
    default: return {Kind::kSymmetric, -1, 0};  // group −1: not one of these types
  }
}
constexpr bool IsTable4(DType t) { return LayoutOf(t).group >= 0; }

// The scalar f32 values the decoders multiply d by (symmetric: c − 8; asymmetric: c).
inline float Level(Kind k, int c) { return k == Kind::kSymmetric ? (float)(c - 8) : (float)c; }

// The table-4 types, listed once: the twins' dispatch (Find) and the tests walk this list.
inline constexpr DType kTypes[] = {DType::kI4S_PC, DType::kI4A_PC, DType::kKM4_PC};
static_assert(std::ranges::all_of(kTypes, IsTable4), "every listed type has a layout");

// Fn<W>::kFn for the table-4 type `weight`, nullptr for any other (the twins' dispatch tables).
template <template <DType> class Fn, class R>
R Find(DType weight) {
  return FindInTypeList<kTypes, Fn, R>(weight);
}

// The AVX2 and AVX-512 twins (qdot_table4_avx2.cc, qdot_table4_avx512.cc); nullptr where not built
// or not a table-4 type. The AVX2 twin needs CpuHasAvx2FmaF16c(); the AVX-512 ones CpuHasAvx512F()
// and VBMI (checked here). The four-token and four-weight-row forms give the single-row form's
// bits per token and row.
QDotFn Avx2Dot(DType weight);
QDotFn Avx512Dot(DType weight);
QDotX4Fn Avx512DotX4(DType weight);
QDotRows4Fn Avx512DotRows4(DType weight);

}  // namespace smelt::table4
