#pragma once
// Helpers for the format tests: test rows of named kinds, and error measures against the
// original f32 values. Header-only, used only by src/formats/*_test.cc.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "formats/types.h"

namespace smelt::testing {

enum class RowKind {
  kGaussian,      // N(0, 1)
  kOutliers,      // N(0, 1) with every 37th value x50
  kAllZero,       // zeros
  kTiny,          // N(0, 1) * 1e-4
  kHuge,          // N(0, 1) * 1e3 (block scales stay well inside fp16's range)
  kPositive,      // |N(0, 1)| + 0.5 (all one sign: exercises the mins of asymmetric formats)
  kConstant,      // every value 0.75
};
inline const RowKind kAllRowKinds[] = {RowKind::kGaussian, RowKind::kOutliers, RowKind::kAllZero,
                                       RowKind::kTiny,     RowKind::kHuge,     RowKind::kPositive,
                                       RowKind::kConstant};

inline std::string RowKindName(RowKind k) {
  switch (k) {
    case RowKind::kGaussian: return "gaussian";
    case RowKind::kOutliers: return "outliers";
    case RowKind::kAllZero: return "zero";
    case RowKind::kTiny: return "tiny";
    case RowKind::kHuge: return "huge";
    case RowKind::kPositive: return "positive";
    case RowKind::kConstant: return "constant";
  }
  return "?";
}

inline std::vector<float> MakeRow(RowKind kind, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> x((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    const float g = gauss(rng);
    switch (kind) {
      case RowKind::kGaussian: x[i] = g; break;
      case RowKind::kOutliers: x[i] = i % 37 == 5 ? 50.0f * g : g; break;
      case RowKind::kAllZero: x[i] = 0.0f; break;
      case RowKind::kTiny: x[i] = 1e-4f * g; break;
      case RowKind::kHuge: x[i] = 1e3f * g; break;
      case RowKind::kPositive: x[i] = std::fabs(g) + 0.5f; break;
      case RowKind::kConstant: x[i] = 0.75f; break;
    }
  }
  return x;
}

// Encodes x with the type's from_float and decodes it again.
inline std::vector<float> RoundTrip(DType t, const std::vector<float>& x) {
  const TypeTraits& tr = Traits(t);
  std::vector<uint8_t> packed(RowBytes(t, (int64_t)x.size()));
  tr.from_float(x.data(), packed.data(), (int64_t)x.size());
  std::vector<float> y(x.size());
  tr.to_float(packed.data(), y.data(), (int64_t)x.size());
  return y;
}

inline double Rms(const std::vector<float>& x) {
  double s = 0;
  for (float v : x) s += (double)v * v;
  return std::sqrt(s / (double)x.size());
}

inline double RmsError(const std::vector<float>& x, const std::vector<float>& y) {
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
  return std::sqrt(s / (double)x.size());
}

// Largest |fp16(v) - v| for a value of magnitude |v| in fp16's finite range: half an ulp,
// 2^-11 relative for normals, 2^-25 absolute for subnormals.
inline double Fp16RoundingBound(double v) {
  return std::max(std::fabs(v) * std::ldexp(1.0, -11), std::ldexp(1.0, -25));
}

}  // namespace smelt::testing
