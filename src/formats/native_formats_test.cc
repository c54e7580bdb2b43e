// The smelt-native formats (ids 1024+): FP8 element codecs checked exhaustively, per-element
// error limits derived from each format's geometry on every row kind, the expected ordering of
// errors across bits, groups and symmetry, and importance-weighted encoders against plain ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "formats/activation.h"
#include "formats/format_test_util.h"
#include "formats/fp8.h"
#include "formats/kmeans.h"
#include "formats/nf4.h"
#include "formats/pow2.h"
#include "formats/types.h"

namespace smelt {
namespace {

using testing::Fp16RoundingBound;
using testing::kAllRowKinds;
using testing::MakeRow;
using testing::Rms;
using testing::RmsError;
using testing::RoundTrip;
using testing::RowKind;
using testing::RowKindName;

// --- FP8 element codecs ----------------------------------------------------------------------

struct Fp8Case {
  const char* name;
  Fp8Format f;
};
const Fp8Case kFp8[] = {{"e4m3", kE4M3}, {"e5m2", kE5M2}};

TEST(NativeFp8, EveryByteDecodesAndFiniteOnesRoundTrip) {
  for (const Fp8Case& c : kFp8) {
    SCOPED_TRACE(c.name);
    int finite = 0, nans = 0, infs = 0;
    float largest = 0;
    for (int b = 0; b < 256; ++b) {
      const float v = Fp8ToFloat(c.f, (uint8_t)b);
      if (std::isnan(v)) { ++nans; continue; }
      if (std::isinf(v)) { ++infs; continue; }
      ++finite;
      largest = std::max(largest, std::fabs(v));
      EXPECT_EQ(FloatToFp8(c.f, v), (uint8_t)b) << b << " = " << v;
      EXPECT_EQ(std::signbit(v), (b & 0x80) != 0) << b;
    }
    // OCP: E4M3 has two NaNs (S.1111.111) and no infinities; E5M2 two infinities, six NaNs.
    EXPECT_EQ(nans, c.f.ieee_specials ? 6 : 2);
    EXPECT_EQ(infs, c.f.ieee_specials ? 2 : 0);
    EXPECT_EQ(largest, c.f.max);
    EXPECT_EQ(Fp8ToFloat(c.f, c.f.max_code), c.f.max);
    // Smallest subnormal: 2^(1 − bias − M).
    EXPECT_EQ(Fp8ToFloat(c.f, 1), std::ldexp(1.0f, 1 - c.f.bias - c.f.man_bits));
    EXPECT_TRUE(std::isnan(Fp8ToFloat(c.f, FloatToFp8(c.f, std::numeric_limits<float>::quiet_NaN()))));
  }
}

// The nearest finite code by brute force; ties to the code with an even mantissa, beyond the
// range saturates.
uint8_t NearestByBruteForce(const Fp8Format& f, float x) {
  if (std::isinf(x)) return (uint8_t)((std::signbit(x) ? 0x80 : 0) | f.max_code);  // no distance to compare
  int best = -1;
  double best_err = 0;
  for (int b = 0; b < 256; ++b) {
    const float v = Fp8ToFloat(f, (uint8_t)b);
    if (!std::isfinite(v) || std::signbit(v) != std::signbit(x)) continue;
    const double err = std::fabs((double)v - (double)x);
    if (best < 0 || err < best_err || (err == best_err && (b & 1) == 0)) best = b, best_err = err;
  }
  return (uint8_t)best;
}

TEST(NativeFp8, EncodeRoundsToNearestEvenAndSaturates) {
  for (const Fp8Case& c : kFp8) {
    SCOPED_TRACE(c.name);
    std::vector<float> probes;
    // Every code's value, the midpoints between neighbours (ties), and points just off them.
    std::vector<float> finite;
    for (int b = 0; b < 128; ++b)
      if (std::isfinite(Fp8ToFloat(c.f, (uint8_t)b))) finite.push_back(Fp8ToFloat(c.f, (uint8_t)b));
    std::sort(finite.begin(), finite.end());
    for (size_t i = 0; i + 1 < finite.size(); ++i) {
      const float mid = 0.5f * (finite[i] + finite[i + 1]);
      for (float p : {finite[i], mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)}) probes.push_back(p);
    }
    // Beyond the range, and random values over the whole range.
    for (float p : {c.f.max * 1.01f, c.f.max * 1.2f, c.f.max * 1e3f, std::numeric_limits<float>::infinity()})
      probes.push_back(p);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> exp(-20.0f, std::log2(c.f.max) + 1.0f);
    for (int i = 0; i < 20000; ++i) probes.push_back(std::exp2(exp(rng)));
    for (float p : probes) {
      for (float x : {p, -p}) {
        ASSERT_EQ(FloatToFp8(c.f, x), NearestByBruteForce(c.f, x)) << x;
      }
    }
  }
}

// --- per-element error limits ----------------------------------------------------------------

struct GroupIntType {
  DType type;
  int bits;
  bool symmetric;
  int group;
};
const GroupIntType kGroupInts[] = {
    {DType::kI4S_G32, 4, true, 32},   {DType::kI4S_G64, 4, true, 64},   {DType::kI4S_G128, 4, true, 128},
    {DType::kI4A_G32, 4, false, 32},  {DType::kI4A_G64, 4, false, 64},  {DType::kI4A_G128, 4, false, 128},
    {DType::kI3S_G32, 3, true, 32},   {DType::kI3S_G64, 3, true, 64},   {DType::kI3S_G128, 3, true, 128},
    {DType::kI3A_G32, 3, false, 32},  {DType::kI3A_G64, 3, false, 64},  {DType::kI3A_G128, 3, false, 128},
    {DType::kI2S_G32, 2, true, 32},   {DType::kI2S_G64, 2, true, 64},   {DType::kI2S_G128, 2, true, 128},
    {DType::kI2A_G32, 2, false, 32},  {DType::kI2A_G64, 2, false, 64},  {DType::kI2A_G128, 2, false, 128},
};

// Checks |x − x̂| <= limit(block of x, j) for every element of a row of each kind.
template <class Limit>
void CheckLimit(DType type, int64_t block, Limit limit) {
  for (RowKind kind : kAllRowKinds) {
    const std::vector<float> x = MakeRow(kind, 1024, 11);
    const std::vector<float> y = RoundTrip(type, x);
    for (int64_t b = 0; b < 1024; b += block) {
      const float* xb = x.data() + b;
      for (int64_t j = 0; j < block; ++j) {
        const double err = std::fabs((double)x[b + j] - y[b + j]);
        ASSERT_LE(err, limit(xb, j)) << DTypeName(type) << " " << RowKindName(kind) << " element " << b + j
                                     << ": " << x[b + j] << " -> " << y[b + j];
      }
    }
  }
}

double BlockAbsMax(const float* x, int n) {
  double a = 0;
  for (int j = 0; j < n; ++j) a = std::max(a, (double)std::fabs(x[j]));
  return a;
}

// The error limit of a b-bit integer span of n weights (a group, or a whole row).
double IntSpanLimit(int bits, bool symmetric, int64_t n, const float* xb, int64_t j) {
  const int top = 1 << (bits - 1);  // |lowest level| of the symmetric kind
  if (symmetric) {
    // d = max/−2^(b−1): half a step, except values of the other sign beyond (hi + ½)·|d|,
    // clamped to hi = 2^(b−1)−1 (at most one step, since |x| <= 2^(b−1)·|d|). The codes are
    // chosen for fp16(d), off by up to 2^(b−1) fp16 roundings of d.
    const double d = BlockAbsMax(xb, (int)n) / top;
    const double kHalfStep = 0.5, kClampedStep = 1.0;
    const double steps = std::fabs(xb[j]) <= (top - 0.5) * d ? kHalfStep : kClampedStep;
    return steps * d + top * Fp16RoundingBound(d) + 1e-6 * d;
  }
  // d = (max − min)/(2^b − 1), m = min: half a step, plus the fp16 roundings of m and of d
  // (times the largest code).
  const float lo = *std::min_element(xb, xb + n), hi = *std::max_element(xb, xb + n);
  const double d = ((double)hi - lo) / ((1 << bits) - 1);
  return 0.5 * d + Fp16RoundingBound(lo) + ((1 << bits) - 1) * Fp16RoundingBound(d) + 1e-6 * (d + std::fabs(lo));
}

TEST(NativeFormats, GroupIntegersWithinHalfAStep) {
  for (const GroupIntType& g : kGroupInts)
    CheckLimit(g.type, g.group, [&](const float* xb, int64_t j) { return IntSpanLimit(g.bits, g.symmetric, g.group, xb, j); });
}

// Per-output-channel types: the same limits with the whole row (CheckLimit's 1024 values) as
// the span; i8_pc's f32 scale max|x|/127 is not rounded, so half a step, and no clamping.
const GroupIntType kPerChannelInts[] = {
    {DType::kI4S_PC, 4, true, 1024}, {DType::kI4A_PC, 4, false, 1024}, {DType::kI3S_PC, 3, true, 1024},
    {DType::kI3A_PC, 3, false, 1024}, {DType::kI2S_PC, 2, true, 1024}, {DType::kI2A_PC, 2, false, 1024},
};

TEST(NativeFormats, PerChannelWithinHalfAStep) {
  for (const GroupIntType& g : kPerChannelInts)
    CheckLimit(g.type, g.group, [&](const float* xb, int64_t j) { return IntSpanLimit(g.bits, g.symmetric, g.group, xb, j); });
  for (DType t : {DType::kI8_PC, DType::kW8A8})
    CheckLimit(t, 1024, [&](const float* xb, int64_t) {
      const double d = BlockAbsMax(xb, 1024) / 127;
      return 0.5 * d * (1 + 1e-6) + 1e-30;
    });
}

// Each row of a per-channel tensor is encoded alone: its own scale, whatever the other rows hold.
TEST(NativeFormats, PerChannelRowsAreIndependent) {
  const int64_t n = 96;
  for (DType t : {DType::kI8_PC, DType::kI4S_PC, DType::kI3A_PC, DType::kI2S_PC}) {
    SCOPED_TRACE(DTypeName(t));
    const size_t rb = RowBytes(t, n);
    EXPECT_EQ(rb, Traits(t).row_header + (size_t)(n / Traits(t).block_size) * Traits(t).type_size);
    // Rows of scales 1e-3, 1 and 1e3 in one tensor; one misaligned tensor start.
    std::vector<float> x;
    for (float s : {1e-3f, 1.0f, 1e3f})
      for (float v : MakeRow(RowKind::kGaussian, n, 3)) x.push_back(s * v);
    std::vector<uint8_t> packed(1 + 3 * rb);
    for (int r = 0; r < 3; ++r) Traits(t).from_float(x.data() + r * n, packed.data() + 1 + r * rb, n);
    Tensor tensor;
    tensor.name = "w";
    tensor.type = t;
    tensor.n_dims = 2;
    tensor.ne = {n, 3, 1, 1};
    tensor.data = packed.data() + 1;
    tensor.nbytes = 3 * rb;
    const std::vector<float> all = DequantizeAll(tensor);
    std::vector<double> relative;
    for (int r = 0; r < 3; ++r) {
      std::vector<float> row(n), alone(x.begin() + r * n, x.begin() + (r + 1) * n);
      DequantizeRow(tensor, r, row.data());
      EXPECT_EQ(row, RoundTrip(t, alone)) << r;
      EXPECT_TRUE(std::equal(row.begin(), row.end(), all.begin() + r * n)) << r;
      relative.push_back(RmsError(alone, row) / Rms(alone));
    }
    // The rows are scaled copies of one row, each with its own scale: equal relative errors (up
    // to the fp16 rounding of the scales), where one scale for all would lose the small rows.
    EXPECT_NEAR(relative[0], relative[2], 2e-3 + 1e-2 * relative[2]);
    EXPECT_NEAR(relative[1], relative[2], 2e-3 + 1e-2 * relative[2]);
  }
}

// w8a8 rounds the activation row per token to int8 (the i8_pc encoding); i8_pc weights leave the
// activations as they are.
TEST(NativeFormats, W8A8RoundsActivationsPerToken) {
  EXPECT_EQ(ActivationType(DType::kW8A8), DType::kI8_PC);
  EXPECT_EQ(ActivationType(DType::kI8_PC), DType::kF32);
  const int64_t n = 200;
  std::vector<float> x = MakeRow(RowKind::kOutliers, n, 9), y(n);
  RoundActivationRow(DType::kW8A8, x.data(), y.data(), n);
  double amax = 0;
  for (float v : x) amax = std::max(amax, (double)std::fabs(v));
  const double d = amax / 127;
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_LE(std::fabs(x[i] - y[i]), 0.5 * d * (1 + 1e-6)) << i;
    const double q = y[i] / d;  // every value is an integer multiple of the one scale
    EXPECT_NEAR(q, std::round(q), 1e-3) << i;
  }
  RoundActivationRow(DType::kI8_PC, x.data(), y.data(), n);
  EXPECT_EQ(x, y);
}

TEST(NativeFormats, Nf4WithinHalfTheLargestCodebookGap) {
  double gap = 0;
  for (int i = 0; i + 1 < 16; ++i) gap = std::max(gap, (double)kNF4Values[i + 1] - kNF4Values[i]);
  CheckLimit(DType::kNF4, kQKNF4, [&](const float* xb, int64_t) {
    const double d = BlockAbsMax(xb, kQKNF4);
    return 0.5 * gap * d + Fp16RoundingBound(d) + 1e-6 * d;
  });
}

TEST(NativeFormats, Fp8RelativeErrorWithinRange) {
  for (const auto& entry : {std::pair{DType::kF8E4M3_B32, kE4M3}, std::pair{DType::kF8E5M2_B32, kE5M2}}) {
    const auto& f = entry.second;  // a plain reference: clang 14 cannot capture structured bindings
    CheckLimit(entry.first, kQKF8, [&](const float* xb, int64_t j) {
      const double d = BlockAbsMax(xb, kQKF8) / f.max, ax = std::fabs(xb[j]);
      // Normals: half an ulp, 2^−(M+1) relative; subnormals: half the subnormal spacing
      // 2^(1 − bias − M) · d. A scale rounded down in fp16 saturates the largest values by at
      // most that rounding, relatively.
      const double kRelative = std::ldexp(1.0, -(f.man_bits + 1));
      const double kSubnormalHalfSpacing = std::ldexp(1.0, -f.bias - f.man_bits);
      const double scale_rounding = d > 0 ? Fp16RoundingBound(d) / d : 0;
      return std::max(kRelative * ax, kSubnormalHalfSpacing * (d + Fp16RoundingBound(d))) +
             (scale_rounding + 1e-6) * ax;
    });
  }
}

TEST(NativeFormats, Pow2WithinAThirdRelative) {
  CheckLimit(DType::kPow2_B32, kQKPow2, [&](const float* xb, int64_t j) {
    // Between neighbouring powers 2^−(k+1) and 2^−k the nearest is at most a quarter of 2^−k
    // away from a value at least three quarters of 2^−k at the midpoint: ≤ 1/3 relative. Below
    // the smallest level 2^−6: half of it, absolutely.
    const double d = BlockAbsMax(xb, kQKPow2), ax = std::fabs(xb[j]);
    const double kRelative = 1.0 / 3.0, kBelowSmallest = std::ldexp(1.0, -kPow2MaxShift - 1);
    return std::max(kRelative * ax, kBelowSmallest * d) + Fp16RoundingBound(d) + 1e-6 * d;
  });
}

// k-means codebooks: every weight decodes to its nearest stored centroid (a property of the
// optimum that rounding to fp16 cannot break, since codes are chosen last), and a non-uniform
// codebook beats the uniform per-channel grid of the same bits on bell-shaped and outlier rows.
template <int Bits>
void CheckKMeans(DType km, DType uniform) {
  for (RowKind kind : kAllRowKinds) {
    SCOPED_TRACE(RowKindName(kind));
    const int64_t n = 512;
    const std::vector<float> x = MakeRow(kind, n, 17);
    std::vector<uint8_t> packed(RowBytes(km, n));
    Traits(km).from_float(x.data(), packed.data(), n);
    typename RowKMeans<Bits>::Header h;
    std::memcpy(&h, packed.data(), sizeof h);
    std::vector<float> y(n);
    Traits(km).to_float(packed.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      double best = INFINITY;
      for (fp16_t c : h.centroid) best = std::min(best, std::fabs((double)x[i] - Fp16ToFloat(c)));
      ASSERT_EQ(std::fabs((double)x[i] - y[i]), best) << DTypeName(km) << " element " << i;
    }
    if (kind == RowKind::kGaussian || kind == RowKind::kOutliers) {
      EXPECT_LT(RmsError(x, y), RmsError(x, RoundTrip(uniform, x))) << DTypeName(km);
    }
  }
}

TEST(NativeFormats, KMeansCodebooksAreNearestAndBeatUniformGrids) {
  CheckKMeans<4>(DType::kKM4_PC, DType::kI4A_PC);
  CheckKMeans<3>(DType::kKM3_PC, DType::kI3A_PC);
  CheckKMeans<2>(DType::kKM2_PC, DType::kI2A_PC);
}

// Outlier-aware types: the 8 most salient weights of each row come back exactly (to fp16), the
// rest is the base format's encoding of the row with them zeroed, and rows with outliers lose far
// less than in the base format alone.
TEST(NativeFormats, OutlierAwareKeepsTheLargestWeightsExactly) {
  for (const auto& pair : {std::pair{DType::kQ4_0_O8, DType::kQ4_0}, std::pair{DType::kI3S_G32_O8, DType::kI3S_G32}}) {
    const DType t = pair.first, base = pair.second;
    SCOPED_TRACE(DTypeName(t));
    const int64_t n = 256;
    const std::vector<float> x = MakeRow(RowKind::kOutliers, n, 23);
    const std::vector<float> y = RoundTrip(t, x);
    // The 8 largest |x| by brute force.
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
    std::vector<float> dense = x;
    for (int k = 0; k < 8; ++k) {
      EXPECT_EQ(y[order[k]], Fp16ToFloat(FloatToFp16(x[order[k]]))) << order[k];
      dense[order[k]] = 0.0f;
    }
    const std::vector<float> want = RoundTrip(base, dense);
    for (int k = 8; k < n; ++k) EXPECT_EQ(y[order[k]], want[order[k]]) << order[k];
    EXPECT_LT(RmsError(x, y), 0.5 * RmsError(x, RoundTrip(base, x)));
  }
}

// --- orderings -------------------------------------------------------------------------------

double Rmse(DType type, RowKind kind) {
  const std::vector<float> x = MakeRow(kind, 1 << 14, 5);
  return RmsError(x, RoundTrip(type, x));
}

const GroupIntType& Find(int bits, bool symmetric, int group) {
  for (const GroupIntType& g : kGroupInts)
    if (g.bits == bits && g.symmetric == symmetric && g.group == group) return g;
  std::abort();
}

TEST(NativeFormats, FewerBitsLargerGroupsAndSymmetryCostAccuracy) {
  for (bool sym : {true, false}) {
    for (int group : {32, 64, 128}) {
      const double r4 = Rmse(Find(4, sym, group).type, RowKind::kGaussian);
      const double r3 = Rmse(Find(3, sym, group).type, RowKind::kGaussian);
      const double r2 = Rmse(Find(2, sym, group).type, RowKind::kGaussian);
      EXPECT_GT(r2, r3) << sym << " g" << group;
      EXPECT_GT(r3, r4) << sym << " g" << group;
    }
    for (int bits : {4, 3, 2}) {
      EXPECT_LE(Rmse(Find(bits, sym, 32).type, RowKind::kGaussian), Rmse(Find(bits, sym, 64).type, RowKind::kGaussian));
      EXPECT_LE(Rmse(Find(bits, sym, 64).type, RowKind::kGaussian),
                Rmse(Find(bits, sym, 128).type, RowKind::kGaussian));
    }
  }
  for (int bits : {4, 3, 2})
    for (int group : {32, 64, 128})
      EXPECT_LE(Rmse(Find(bits, false, group).type, RowKind::kPositive),
                Rmse(Find(bits, true, group).type, RowKind::kPositive))
          << bits << " g" << group;
}

// --- importance-weighted encoders ------------------------------------------------------------

TEST(NativeFormats, WeightedEncodersLowerTheWeightedError) {
  const int64_t n = 1 << 13;
  const std::vector<float> x = MakeRow(RowKind::kGaussian, n, 21);
  std::mt19937 rng(22);
  std::normal_distribution<float> g(0.0f, 1.5f);
  std::vector<float> w(n);
  for (float& v : w) v = std::exp(g(rng));  // importances spread over orders of magnitude
  int checked = 0;
  for (uint32_t id = kFirstNativeTypeId; id < kFirstNativeTypeId + 64; ++id) {
    const TypeTraits* tr = FindTraits(id);
    if (!tr || !tr->from_float_weighted) continue;
    ++checked;
    std::vector<uint8_t> plain(RowBytes(tr->type, n)), weighted(plain.size());
    tr->from_float(x.data(), plain.data(), n);
    tr->from_float_weighted(x.data(), w.data(), weighted.data(), n);
    std::vector<float> yp(n), yw(n);
    tr->to_float(plain.data(), yp.data(), n);
    tr->to_float(weighted.data(), yw.data(), n);
    double ep = 0, ew = 0;
    for (int64_t i = 0; i < n; ++i) ep += w[i] * std::pow(x[i] - yp[i], 2), ew += w[i] * std::pow(x[i] - yw[i], 2);
    EXPECT_LT(ew, ep) << tr->name;
    // All-zero importances mean plain MSE, which the search also improves on.
    std::vector<float> zeros(n, 0.0f);
    tr->from_float_weighted(x.data(), zeros.data(), weighted.data(), n);
    tr->to_float(weighted.data(), yw.data(), n);
    EXPECT_LE(RmsError(x, yw), RmsError(x, yp)) << tr->name;
  }
  // 18 group-integer types, nf4, pow2, i8_pc, w8a8, 6 per-channel ints, 3 k-means, 2 outlier-aware
  // (fp8 has no scale to search)
  EXPECT_EQ(checked, 33);
}

// The measured table of docs/BENCHMARKS.md: RMSE of from_float and from_float_weighted (plain
// MSE) on N(0, 1) rows, and bits/weight, for every smelt-native type.
TEST(NativeFormats, PrintRmseTable) {
  const int64_t n = 1 << 16;
  const std::vector<float> x = MakeRow(RowKind::kGaussian, n, 1);
  const std::vector<float> ones(n, 1.0f);
  std::printf("| type | bits/weight | RMSE (from_float) | RMSE (mse search) |\n|---|---|---|---|\n");
  for (uint32_t id = kFirstNativeTypeId; id < kFirstNativeTypeId + 64; ++id) {
    const TypeTraits* tr = FindTraits(id);
    if (!tr) continue;
    const double rmse = RmsError(x, RoundTrip(tr->type, x));
    std::string searched = "-";
    if (tr->from_float_weighted) {
      std::vector<uint8_t> packed(RowBytes(tr->type, n));
      std::vector<float> y(n);
      tr->from_float_weighted(x.data(), ones.data(), packed.data(), n);
      tr->to_float(packed.data(), y.data(), n);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4f", RmsError(x, y));
      searched = buf;
    }
    std::printf("| %s | %.4g | %.4f | %s |\n", std::string(tr->name).c_str(), 8.0 * tr->type_size / tr->block_size,
                rmse, searched.c_str());
  }
}

}  // namespace
}  // namespace smelt
