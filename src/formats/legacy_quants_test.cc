// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 against an independent reading of their layouts: a naive
// decoder that takes bytes at their documented offsets and bits one at a time; hand-computed
// blocks; exactly representable rows that must survive a round trip unchanged; and per-element
// error bounds derived from each format's step size (worst case, not fitted).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "formats/format_test_util.h"
#include "formats/q4_0.h"
#include "formats/q4_1.h"
#include "formats/q5_0.h"
#include "formats/q5_1.h"
#include "formats/q8_0.h"
#include "formats/types.h"

namespace smelt {
namespace {

using testing::Fp16RoundingBound;
using testing::MakeRow;
using testing::RoundTrip;
using testing::RowKind;

// fp16 decode written from IEEE 754: sign, 5-bit exponent (bias 15), 10-bit fraction.
double NaiveHalf(const uint8_t* p) {
  const int bits = p[0] | (p[1] << 8);
  const int sign = bits >> 15, exp = (bits >> 10) & 31, frac = bits & 1023;
  double v = exp == 0 ? std::ldexp(frac, -24) : exp == 31 ? (frac ? NAN : INFINITY)
                                                          : std::ldexp(1024 + frac, exp - 25);
  return sign ? -v : v;
}
int Bit(const uint8_t* p, int i) { return (p[i / 8] >> (i % 8)) & 1; }

// The layouts, read naively. Each returns weight j (0..31) of the block at p.
// Q4_0: d at 0; 4-bit codes from byte 2: weight j < 16 is the low nibble of byte 2+j, weight
// j >= 16 the high nibble of byte 2+(j-16); value d*(q-8).
double NaiveQ4_0(const uint8_t* p, int j) {
  int q = 0;
  for (int b = 0; b < 4; ++b) q |= Bit(p + 2 + j % 16, b + 4 * (j / 16)) << b;
  return NaiveHalf(p) * (q - 8);
}
// Q4_1: d at 0, m at 2, nibbles from byte 4; value d*q + m.
double NaiveQ4_1(const uint8_t* p, int j) {
  int q = 0;
  for (int b = 0; b < 4; ++b) q |= Bit(p + 4 + j % 16, b + 4 * (j / 16)) << b;
  return NaiveHalf(p) * q + NaiveHalf(p + 2);
}
// Q5_0: d at 0, 32 high bits at bytes 2..5 (weight j is bit j, little-endian), nibbles from 6.
double NaiveQ5_0(const uint8_t* p, int j) {
  int q = Bit(p + 2, j) << 4;
  for (int b = 0; b < 4; ++b) q |= Bit(p + 6 + j % 16, b + 4 * (j / 16)) << b;
  return NaiveHalf(p) * (q - 16);
}
// Q5_1: d at 0, m at 2, high bits at 4..7, nibbles from 8; value d*q + m.
double NaiveQ5_1(const uint8_t* p, int j) {
  int q = Bit(p + 4, j) << 4;
  for (int b = 0; b < 4; ++b) q |= Bit(p + 8 + j % 16, b + 4 * (j / 16)) << b;
  return NaiveHalf(p) * q + NaiveHalf(p + 2);
}
// Q8_0: d at 0, int8 codes from byte 2. Q8_1: d at 0, s at 2, codes from byte 4.
double NaiveQ8_0(const uint8_t* p, int j) { return NaiveHalf(p) * (int8_t)p[2 + j]; }
double NaiveQ8_1(const uint8_t* p, int j) { return NaiveHalf(p) * (int8_t)p[4 + j]; }

struct Legacy {
  DType type;
  double (*naive)(const uint8_t*, int);
};
const Legacy kLegacy[] = {{DType::kQ4_0, NaiveQ4_0}, {DType::kQ4_1, NaiveQ4_1},
                          {DType::kQ5_0, NaiveQ5_0}, {DType::kQ5_1, NaiveQ5_1},
                          {DType::kQ8_0, NaiveQ8_0}, {DType::kQ8_1, NaiveQ8_1}};

// Random block bytes whose fp16 fields (the first `halves` of them) cover every class:
// zero, subnormal, normal, large, infinity, NaN, both signs.
std::vector<uint8_t> RandomBlocks(DType t, int nblocks, int halves, std::mt19937& rng) {
  const size_t bs = Traits(t).type_size;
  std::vector<uint8_t> bytes(bs * nblocks);
  for (auto& b : bytes) b = (uint8_t)rng();
  const uint16_t classes[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xbc00,
                              0x2e66, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00};
  for (int i = 0; i < nblocks; ++i) {
    for (int h = 0; h < halves; ++h) {
      uint16_t v = i % 2 ? classes[(i / 2 + h) % 13] : (uint16_t)(rng() & 0x77ff);  // or normal
      std::memcpy(&bytes[i * bs + 2 * h], &v, 2);
    }
  }
  return bytes;
}

TEST(FormatsLegacy, DecodeMatchesNaiveLayoutReading) {
  std::mt19937 rng(11);
  for (const Legacy& f : kLegacy) {
    const int halves = (f.type == DType::kQ4_1 || f.type == DType::kQ5_1) ? 2 : 1;
    const int nblocks = 64;
    auto bytes = RandomBlocks(f.type, nblocks, halves, rng);
    std::vector<float> y(32 * nblocks);
    Traits(f.type).to_float(bytes.data(), y.data(), (int64_t)y.size());
    for (int i = 0; i < nblocks; ++i) {
      for (int j = 0; j < 32; ++j) {
        const double want = f.naive(&bytes[i * Traits(f.type).type_size], j);
        const float got = y[32 * i + j];
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(got)) << DTypeName(f.type) << " block " << i << " weight " << j;
        } else if (std::isinf(want)) {
          EXPECT_EQ((double)got, want) << DTypeName(f.type) << " block " << i << " weight " << j;
        } else {
          // The naive value is exact in double; the decoder rounds once (or twice for d*q + m).
          EXPECT_NEAR(got, want, std::fabs(want) * 1.2e-7 + 1e-45)
              << DTypeName(f.type) << " block " << i << " weight " << j;
        }
      }
    }
  }
}

TEST(FormatsLegacy, HandComputedBlocks) {
  // Q4_0: d = 0.5 (0x3800); byte 0 of qs = 0x1f -> w0 = (15-8)*0.5 = 3.5, w16 = (1-8)*0.5 = -3.5.
  BlockQ4_0 a{};
  a.d = 0x3800;
  a.qs[0] = 0x1f;
  for (int j = 1; j < 16; ++j) a.qs[j] = 0x88;  // all others (8-8)*0.5 = 0
  float y[32];
  DequantizeRowQ4_0(&a, y, 32);
  EXPECT_EQ(y[0], 3.5f);
  EXPECT_EQ(y[16], -3.5f);
  EXPECT_EQ(y[1], 0.0f);

  // Q4_1: d = 2, m = -1; qs[3] = 0xa5 -> w3 = 5*2-1 = 9, w19 = 10*2-1 = 19.
  BlockQ4_1 b{};
  b.d = 0x4000;
  b.m = 0xbc00;
  b.qs[3] = 0xa5;
  DequantizeRowQ4_1(&b, y, 32);
  EXPECT_EQ(y[3], 9.0f);
  EXPECT_EQ(y[19], 19.0f);
  EXPECT_EQ(y[0], -1.0f);

  // Q5_0: d = 0.25; qh bit 2 and bit 18 set; qs[2] = 0x3f -> w2 = (16|15)-16 = 15 -> 3.75,
  // w18 = (16|3)-16 = 3 -> 0.75; w0 = (0|0)-16 = -16 -> -4.
  BlockQ5_0 c{};
  c.d = 0x3400;
  c.qh[0] = 0x04;
  c.qh[2] = 0x04;
  c.qs[2] = 0x3f;
  DequantizeRowQ5_0(&c, y, 32);
  EXPECT_EQ(y[2], 3.75f);
  EXPECT_EQ(y[18], 0.75f);
  EXPECT_EQ(y[0], -4.0f);

  // Q5_1: d = 1, m = 0.5; qh bit 31 set, qs[15] = 0xf0 -> w31 = 16|15 = 31 -> 31.5, w15 = 0.5.
  BlockQ5_1 e{};
  e.d = 0x3c00;
  e.m = 0x3800;
  e.qh[3] = 0x80;
  e.qs[15] = 0xf0;
  DequantizeRowQ5_1(&e, y, 32);
  EXPECT_EQ(y[31], 31.5f);
  EXPECT_EQ(y[15], 0.5f);

  // Q8_0: d = -0.125; q = -128, 127 -> 16, -15.875.
  BlockQ8_0 g{};
  g.d = 0xb000;
  g.qs[0] = -128;
  g.qs[1] = 127;
  DequantizeRowQ8_0(&g, y, 32);
  EXPECT_EQ(y[0], 16.0f);
  EXPECT_EQ(y[1], -15.875f);
}

TEST(FormatsLegacy, EncodeFieldsFollowTheSpec) {
  // Q4_0's scale is the value of largest magnitude over -8; it decodes back exactly when
  // representable. Q8_1's s is d times the sum of the codes.
  std::vector<float> x = MakeRow(RowKind::kGaussian, 32, 3);
  x[7] = -4.0f;  // the largest magnitude
  BlockQ4_0 q4;
  QuantizeRowQ4_0Ref(x.data(), &q4, 32);
  EXPECT_EQ(Fp16ToFloat(q4.d), 0.5f);
  float y[32];
  DequantizeRowQ4_0(&q4, y, 32);
  EXPECT_EQ(y[7], -4.0f);

  BlockQ8_1 q8;
  QuantizeRowQ8_1Ref(x.data(), &q8, 32);
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += q8.qs[j];
  EXPECT_EQ(q8.s, FloatToFp16((float)sum * Fp16ToFloat(q8.d)));
  EXPECT_EQ(Fp16ToFloat(q8.d), Fp16ToFloat(FloatToFp16(4.0f / 127)));
}

TEST(FormatsLegacy, ExactlyRepresentableRowsRoundTrip) {
  // Rows built from codes and a power-of-two scale, with the extreme code present so the
  // quantizer picks that scale: decode(encode(x)) == x exactly, for every code value.
  std::mt19937 rng(5);
  for (float d : {1.0f, 0.0625f, 256.0f}) {
    // Symmetric formats: codes -Q..Q-1 (Q8_0: -127..127), largest magnitude -Q*d.
    for (auto [type, q] : {std::pair{DType::kQ4_0, 8}, {DType::kQ5_0, 16}, {DType::kQ8_0, 127},
                           {DType::kQ8_1, 127}}) {
      std::vector<float> x(64);
      const int hi = type == DType::kQ4_0 || type == DType::kQ5_0 ? q - 1 : q;
      for (int i = 0; i < 64; ++i) x[i] = d * (float)(i % 32 == 9 ? -q : -q + (int)(rng() % (q + hi + 1)));
      EXPECT_EQ(RoundTrip(type, x), x) << DTypeName(type) << " d=" << d;
    }
    // Asymmetric: min m plus codes 0..2^b-1 with both ends present.
    for (auto [type, levels] : {std::pair{DType::kQ4_1, 15}, {DType::kQ5_1, 31}}) {
      const float m = -3.0f * d;
      std::vector<float> x(64);
      for (int i = 0; i < 64; ++i) {
        const int code = i % 32 == 0 ? 0 : i % 32 == 1 ? levels : (int)(rng() % (levels + 1));
        x[i] = m + d * (float)code;
      }
      EXPECT_EQ(RoundTrip(type, x), x) << DTypeName(type) << " d=" << d;
    }
  }
}

// Worst-case error of one weight, derived from the format: step d (fp16-rounded), codes rounded
// to nearest (symmetric formats: the positive extreme is clipped to Q-1 codes, a full step),
// plus the fp16 rounding of d times the largest code and of m.
double MaxErrorBound(DType t, const float* block) {
  float amax = 0, mn = block[0], mx = block[0];
  for (int j = 0; j < 32; ++j) {
    amax = std::max(amax, std::fabs(block[j]));
    mn = std::min(mn, block[j]);
    mx = std::max(mx, block[j]);
  }
  const double slack = 1e-6 * amax;  // f32 arithmetic in x * (1/d)
  switch (t) {
    case DType::kQ4_0: return amax / 8.0 + 8 * Fp16RoundingBound(amax / 8.0) + slack;
    case DType::kQ5_0: return amax / 16.0 + 16 * Fp16RoundingBound(amax / 16.0) + slack;
    case DType::kQ8_0:
    case DType::kQ8_1: return amax / 127.0 / 2 + 127 * Fp16RoundingBound(amax / 127.0) + slack;
    case DType::kQ4_1: {
      const double d = ((double)mx - mn) / 15;
      return d / 2 + 15 * Fp16RoundingBound(d) + Fp16RoundingBound(mn) + slack;
    }
    case DType::kQ5_1: {
      const double d = ((double)mx - mn) / 31;
      return d / 2 + 31 * Fp16RoundingBound(d) + Fp16RoundingBound(mn) + slack;
    }
    default: return 0;
  }
}

TEST(FormatsLegacy, RoundTripErrorWithinStepBound) {
  for (const Legacy& f : kLegacy) {
    for (RowKind kind : testing::kAllRowKinds) {
      for (uint32_t seed = 0; seed < 4; ++seed) {
        const auto x = MakeRow(kind, 256, seed);
        const auto y = RoundTrip(f.type, x);
        for (int b = 0; b < 256 / 32; ++b) {
          const double bound = MaxErrorBound(f.type, &x[32 * b]);
          for (int j = 32 * b; j < 32 * b + 32; ++j) {
            ASSERT_LE(std::fabs((double)y[j] - x[j]), bound)
                << DTypeName(f.type) << " " << testing::RowKindName(kind) << " seed " << seed
                << " weight " << j;
          }
        }
        if (kind == RowKind::kAllZero) {
          for (float v : y) EXPECT_EQ(v, 0.0f);
        }
      }
    }
  }
}

TEST(FormatsLegacy, NonFiniteInputDoesNotCrash) {
  // ggml's arithmetic turns these into NaN/garbage codes; smelt must stay defined (UBSan).
  std::vector<float> x = MakeRow(RowKind::kGaussian, 64, 9);
  x[3] = NAN;
  x[40] = INFINITY;
  for (const Legacy& f : kLegacy) {
    std::vector<uint8_t> packed(RowBytes(f.type, 64));
    Traits(f.type).from_float(x.data(), packed.data(), 64);
  }
}

}  // namespace
}  // namespace smelt
