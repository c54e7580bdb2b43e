// fp16/bf16 conversions against independent references: exhaustive decode checked with ldexp,
// encode checked as "nearest representable, ties to even" by searching neighbours.
#include "core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace smelt {
namespace {

double Fp16Exact(uint16_t h) {  // naive decode with ldexp
  int sign = (h >> 15) ? -1 : 1;
  int exp = (h >> 10) & 0x1f;
  int mant = h & 0x3ff;
  if (exp == 0) return sign * std::ldexp((double)mant, -24);
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(1024.0 + mant, exp - 25);
}

TEST(Half, DecodeAllCodes) {
  for (uint32_t h = 0; h < 65536; ++h) {
    double want = Fp16Exact((uint16_t)h);
    float got = Fp16ToFloat((uint16_t)h);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ((double)got, want) << h;
    }
  }
}

TEST(Half, EncodeIsNearestTiesToEven) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  int checked = 0;
  for (int i = 0; i < 200000; ++i) {
    float f = BitsFloat(bits(rng));
    if (std::isnan(f)) continue;
    if (i % 2) f = std::ldexp(std::fmod(f, 1.0f), (int)(i % 40) - 26);  // focus on fp16 range
    if (std::isnan(f) || std::isinf(f)) continue;
    uint16_t h = FloatToFp16(f);
    double got = Fp16Exact(h);
    double err = std::fabs(got - (double)f);
    if (std::fabs((double)f) >= 65520.0) {
      EXPECT_TRUE(std::isinf(got)) << f;
      continue;
    }
    // No representable half is strictly closer; at a tie the mantissa is even.
    for (int d : {-1, 1}) {
      uint16_t nb = (uint16_t)(h + d);
      if ((nb & 0x7c00) == 0x7c00 || ((h & 0x7fff) == 0 && d < 0)) continue;
      double e2 = std::fabs(Fp16Exact(nb) - (double)f);
      EXPECT_LE(err, e2) << f;
      if (err == e2) {
        EXPECT_EQ(h & 1, 0) << f;
      }
    }
    ++checked;
  }
  EXPECT_GT(checked, 100000);
}

TEST(Half, Bf16RoundTripAndRounding) {
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = Bf16ToFloat((uint16_t)b);
    if (std::isnan(f)) continue;
    EXPECT_EQ(FloatToBf16(f), (uint16_t)b);
  }
  // 1 + 2^-8 lies exactly halfway between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
}

}  // namespace
}  // namespace smelt
