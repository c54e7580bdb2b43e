#pragma once
// What the quantized dot products of kernels/qdot.h compute, stated on decoded values, for the
// tests (header-only, used only by src/kernels/*_test.cc).
//
// For weights w (decoded) and activations a (decoded) the kernels compute, up to f32 rounding,
//   Σ_i w_i·a_i + Σ_blocks m_b·(s_b − Σ_{i in b} a_i)
// where the second sum is non-zero only for Q4_1/Q5_1 weights: ggml multiplies each weight
// block's minimum m_b by the Q8_1 block's stored s_b = fp16(d·Σq) instead of by Σ a_i itself.
// Each block's term carries a few f32 roundings and the blocks are summed in f32, so the error
// is at most about (blocks + 1)·2^-24 times the sum of the terms' magnitudes, DotMass below.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "formats/activation.h"
#include "formats/group_int.h"
#include "formats/bitpack.h"
#include "formats/k_quants.h"
#include "formats/nf4.h"
#include "formats/q4_1.h"
#include "formats/q5_1.h"
#include "formats/q8_0.h"
#include "formats/types.h"

namespace smelt::testing {

// An fp16 scale of kind k % 5: zero (a zero block), ordinary, huge, fp16-subnormal, ordinary.
inline fp16_t ScaleOfKind(int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_int_distribution<int> subnormal(1, 0x3ff);
  switch (k % 5) {
    case 0: return FloatToFp16(0.0f);
    case 2: return FloatToFp16(3000.0f * gauss(rng));
    case 3: return (fp16_t)(subnormal(rng) | (rng() & 1 ? 0x8000 : 0));
    default: return FloatToFp16(0.02f * gauss(rng));
  }
}

// Σ_i x[i]·y[i] in double.
inline double DotDouble(const float* x, const float* y, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (double)x[i] * y[i];
  return s;
}

// Where a weight block keeps its fp16 scale d and, for the types with minimums, the fp16 m
// (Q4_1/Q5_1 and the asymmetric group types i{4,3,2}a_g*: the minimum itself, min_codes 1) or
// dmin (Q2_K/Q4_K/Q5_K: scaled by sub-block codes up to min_codes).
struct ScaleFields {
  size_t d = 0;
  size_t min = 0;
  double min_codes = 0;  // 0: no minimum
};
inline ScaleFields ScaleFieldsOf(DType weight) {
  if (const DType ggml = GroupIntGgmlType(weight); ggml != DType::kF32)  // d, then m (formats/group_int.h)
    return {0, ggml == DType::kQ4_1 ? sizeof(fp16_t) : 0, ggml == DType::kQ4_1 ? 1.0 : 0.0};
  switch (weight) {
    case DType::kQ4_1: return {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m), 1};
    case DType::kQ5_1: return {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m), 1};
    case DType::kQ2_K: return {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin), 15};
    case DType::kQ3_K: return {offsetof(BlockQ3_K, d), 0, 0};
    case DType::kQ4_K: return {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin), 63};
    case DType::kQ5_K: return {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin), 63};
    case DType::kQ6_K: return {offsetof(BlockQ6_K, d), 0, 0};
    default: return {0, 0, 0};  // Q8_0, Q4_0, Q5_0, IQ4_NL: d first
  }
}

inline double LoadHalfAt(const uint8_t* p) {
  fp16_t h;
  std::memcpy(&h, p, sizeof(h));
  return Fp16ToFloat(h);
}

// The largest magnitude a minimum term of weight block b can have (0 for the symmetric types).
inline double BlockMinBound(DType weight, const uint8_t* w_row, int64_t b) {
  const ScaleFields f = ScaleFieldsOf(weight);
  if (f.min_codes == 0) return 0;
  return std::fabs(LoadHalfAt(w_row + b * Traits(weight).type_size + f.min)) * f.min_codes;
}

// The stored s of block b of a Q8_1 activation row.
inline double BlockS(const uint8_t* a_row, int64_t b) {
  return LoadHalfAt(a_row + b * sizeof(BlockQ8_1) + offsetof(BlockQ8_1, s));
}

// Σ_b m_b·(s_b − Σ_{i in b} a_i): what the kernels add to Σ w·a for Q4_1/Q5_1 (0 otherwise).
// a: the decoded activations.
inline double MinTermCorrection(DType weight, const uint8_t* w_row, const uint8_t* a_row, const float* a, int64_t n) {
  if (ActivationType(weight) != DType::kQ8_1) return 0;
  double c = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    double sum_a = 0;
    for (int j = 0; j < 32; ++j) sum_a += a[b * 32 + j];
    const double m = LoadHalfAt(w_row + b * Traits(weight).type_size + ScaleFieldsOf(weight).min);
    c += m * (BlockS(a_row, b) - sum_a);
  }
  return c;
}

// Σ_i (|w_i| + M_b)·|a_i| (+ Σ_b M_b·|s_b| for Q8_1 activations), M_b the bound of block b's
// minimum term: bounds the magnitudes of every term the kernels round (the code part of a value
// is w_i plus its minimum term).
inline double DotMass(DType weight, const uint8_t* w_row, const uint8_t* a_row, const float* w, const float* a,
                      int64_t n) {
  const int64_t block = Traits(weight).block_size;
  double mass = 0;
  for (int64_t b = 0; b < n / block; ++b) {
    const double m = BlockMinBound(weight, w_row, b);
    for (int64_t i = b * block; i < (b + 1) * block; ++i) mass += (std::fabs((double)w[i]) + m) * std::fabs((double)a[i]);
    if (ActivationType(weight) == DType::kQ8_1) mass += m * std::fabs(BlockS(a_row, b));
  }
  return mass;
}

// A weight row as the kernels multiply it: the type's own decoder, except for NF4, whose kernels
// take its levels in fixed point (kNF4Fixed·2^-14, formats/nf4.h), decoded here as d·that.
inline void DecodeAsKernels(DType weight, const uint8_t* w_row, float* w, int64_t n) {
  if (weight != DType::kNF4) return Traits(weight).to_float(w_row, w, n);
  for (int64_t b = 0; b < n / kQKNF4; ++b) {
    BlockNF4 x;
    std::memcpy(&x, w_row + b * sizeof x, sizeof x);
    for (int j = 0; j < kQKNF4; ++j) w[b * kQKNF4 + j] = Fp16ToFloat(x.d) * (float)kNF4Fixed[UnpackCode(x.qs, j, 4)] * kNF4FixedScale;
  }
}

// How far the kernels' weights (DecodeAsKernels) may take a dot with a from the decoded one:
// Σ_i |d_i|·|a_i|·2^-15 for NF4 (each fixed-point level within 2^-15 of its value), 0 otherwise.
inline double LevelRounding(DType weight, const uint8_t* w_row, const float* a, int64_t n) {
  if (weight != DType::kNF4) return 0;
  double bound = 0;
  for (int64_t i = 0; i < n; ++i) bound += std::fabs(LoadHalfAt(w_row + i / kQKNF4 * sizeof(BlockNF4))) * std::fabs((double)a[i]);
  return bound * kNF4FixedScale / 2;
}

// The f32 rounding a kernel may add over n values: (blocks + 2)·2^-23·mass (twice the bound
// of the note above, for the FMA-and-lanes order of the SIMD twins and the decode of Q4_1/Q5_1
// weights as d·q + m in f32).
// (For the k-quants, blocks of 256 are counted as 8 blocks: a generous bound.)
inline double KernelTolerance(int64_t n, double mass) { return (double)(n / 32 + 2) * std::ldexp(1.0, -23) * mass; }

}  // namespace smelt::testing
