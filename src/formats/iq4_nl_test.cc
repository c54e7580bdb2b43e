// IQ4_NL: exhaustive checks of its 16-entry codebook (every code at every class of fp16 scale,
// nearest-entry search against brute force), a naive layout reading, representable rows, and
// error limits.
#include "formats/iq4_nl.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "formats/format_test_util.h"
#include "formats/q4_0.h"
#include "formats/types.h"

namespace smelt {
namespace {

using testing::MakeRow;
using testing::RoundTrip;
using testing::RowKind;

// The codebook as published for ggml's IQ4_NL (ggml-common.h, kvalues_iq4nl).
const int kPublishedCodebook[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                    1,    13,   25,  38,  53,  69,  89,  113};

TEST(FormatsIQ4NL, EveryCodeAtEveryScaleClass) {
  // fp16 scale classes: zeros, smallest subnormal, largest subnormal, smallest normal, ordinary
  // values of both signs, largest finite, infinity, NaN.
  const uint16_t scales[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00,
                             0xb666, 0x7bff, 0x7c00, 0xfc00, 0x7e01};
  for (uint16_t d : scales) {
    for (int code = 0; code < 16; ++code) {
      BlockIQ4_NL b{};
      b.d = d;
      for (int j = 0; j < 16; ++j) b.qs[j] = (uint8_t)(code | (15 - code) << 4);
      float y[32];
      DequantizeRowIQ4_NL(&b, y, 32);
      const double dv = Fp16ToFloat(d);
      for (int j = 0; j < 32; ++j) {
        const double want = dv * kPublishedCodebook[j < 16 ? code : 15 - code];
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(y[j])) << d << " " << code;
        } else {
          EXPECT_EQ((double)y[j], want) << "d=" << d << " code " << code << " weight " << j;
        }
      }
    }
  }
}

TEST(FormatsIQ4NL, DecodeMatchesNaiveLayoutReading) {
  // d at byte 0; weight j < 16 is the low nibble of byte 2+j, weight j >= 16 the high nibble of
  // byte 2+(j-16).
  std::mt19937 rng(4);
  std::vector<uint8_t> bytes(18 * 32);
  for (auto& b : bytes) b = (uint8_t)rng();
  for (int i = 0; i < 32; ++i) bytes[18 * i + 1] &= 0x77;  // finite scales
  std::vector<float> y(32 * 32);
  Traits(DType::kIQ4_NL).to_float(bytes.data(), y.data(), (int64_t)y.size());
  for (int i = 0; i < 32; ++i) {
    const uint8_t* p = &bytes[18 * i];
    const double d = Fp16ToFloat((uint16_t)(p[0] | p[1] << 8));
    for (int j = 0; j < 32; ++j) {
      const int code = (p[2 + j % 16] >> (j < 16 ? 0 : 4)) & 15;
      EXPECT_EQ((double)y[32 * i + j], d * kPublishedCodebook[code]);
    }
  }
}

TEST(FormatsIQ4NL, NearestCodebookIndexIsBruteForceNearest) {
  // Sweep in steps of 1/8 (so every midpoint between entries is hit exactly); ties go to the
  // upper entry, as in ggml.
  for (int i = -8 * 140; i <= 8 * 130; ++i) {
    const float v = (float)i / 8;
    int best = 0;
    for (int c = 1; c < 16; ++c) {
      if (std::fabs(v - kPublishedCodebook[c]) <= std::fabs(v - kPublishedCodebook[best])) best = c;
    }
    ASSERT_EQ(NearestCodebookIndex(16, kIQ4NLValues, v), best) << v;
  }
}

TEST(FormatsIQ4NL, RepresentableRowsRoundTripExactly) {
  // Blocks made of d * codebook values, with -127 present so the search starts from d.
  std::mt19937 rng(8);
  for (float d : {1.0f, 0.03125f, 64.0f}) {
    std::vector<float> x(128);
    for (int i = 0; i < 128; ++i) x[i] = d * (float)kPublishedCodebook[i % 32 == 3 ? 0 : rng() % 16];
    EXPECT_EQ(RoundTrip(DType::kIQ4_NL, x), x) << d;
  }
}

// Named limits: a 16-entry codebook spanning -127..113 has a mean spacing of 240/15 = 16
// codebook units, so with d ~ amax/127 the mean step is about amax * 16/127; the non-uniform
// spacing (12 near zero, 24 at the ends) and the fp16 scale are covered by the slack.
constexpr double kIQ4NLStepsPerAmax = 127.0 / 16;
constexpr double kIQ4NLRmseSlack = 1.15;

double UniformNoiseRmsSymmetric(const std::vector<float>& x, int group, double steps) {
  double s = 0;
  for (size_t b = 0; b < x.size(); b += group) {
    float amax = 0;
    for (int i = 0; i < group; ++i) amax = std::max(amax, std::fabs(x[b + i]));
    s += group * std::pow(amax / steps, 2) / 12;
  }
  return std::sqrt(s / (double)x.size());
}

TEST(FormatsIQ4NL, RoundTripErrorLimits) {
  for (RowKind kind : {RowKind::kGaussian, RowKind::kOutliers, RowKind::kPositive, RowKind::kHuge,
                       RowKind::kTiny}) {
    for (uint32_t seed = 0; seed < 3; ++seed) {
      const auto x = MakeRow(kind, 1024, seed);
      const double ideal = UniformNoiseRmsSymmetric(x, 32, kIQ4NLStepsPerAmax);
      EXPECT_LE(testing::RmsError(x, RoundTrip(DType::kIQ4_NL, x)), kIQ4NLRmseSlack * ideal)
          << testing::RowKindName(kind);
      // The variant without the scale search has the same grid.
      std::vector<BlockIQ4_NL> b(1024 / 32);
      std::vector<float> y(1024);
      QuantizeRowIQ4_NLRef(x.data(), b.data(), 1024);
      DequantizeRowIQ4_NL(b.data(), y.data(), 1024);
      EXPECT_LE(testing::RmsError(x, y), kIQ4NLRmseSlack * ideal) << testing::RowKindName(kind);
    }
  }
  for (float v : RoundTrip(DType::kIQ4_NL, MakeRow(RowKind::kAllZero, 64, 0))) EXPECT_EQ(v, 0.0f);
}

TEST(FormatsIQ4NL, BeatsQ4_0OnBellShapedWeights) {
  // The point of the non-linear codebook: at the same 4.5 bits/weight, lower error than the
  // uniform Q4_0 grid on Gaussian weights.
  const auto x = MakeRow(RowKind::kGaussian, 8192, 2);
  EXPECT_LT(testing::RmsError(x, RoundTrip(DType::kIQ4_NL, x)),
            testing::RmsError(x, RoundTrip(DType::kQ4_0, x)));
}

}  // namespace
}  // namespace smelt
