// The k-quants against an independent reading of their layouts: naive decoders that take each
// field at its documented byte offset and assemble codes and 6-bit scales bit by bit;
// hand-computed blocks; and round-trip error limits derived from each format's step size.
#include "formats/k_quants.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "formats/format_test_util.h"
#include "formats/types.h"

namespace smelt {
namespace {

using testing::MakeRow;
using testing::RoundTrip;
using testing::RowKind;

double Half(const uint8_t* p) { return Fp16ToFloat((uint16_t)(p[0] | (p[1] << 8))); }
int Bit(const uint8_t* p, int byte, int bit) { return (p[byte] >> bit) & 1; }
int Bits(const uint8_t* p, int byte, int first_bit, int n) {
  int v = 0;
  for (int b = 0; b < n; ++b) v |= Bit(p, byte, first_bit + b) << b;
  return v;
}

// A decoded weight as the two terms the decoder combines (value = a - b), so the test can
// allow exactly one f32 rounding of the difference.
struct Terms {
  double a, b;
};

// 2-bit plane of Q2_K/Q3_K: weight e is in byte 32*(e/128) + e%32 of qs, bits 2*((e%128)/32).
int TwoBitCode(const uint8_t* qs, int e) { return Bits(qs, 32 * (e / 128) + e % 32, 2 * ((e % 128) / 32), 2); }

// Q2_K: scales[16] @0 (low nibble scale, high nibble min, per 16 weights), qs[64] @16, d @80,
// dmin @82. value = d*sc*q - dmin*m.
Terms NaiveQ2_K(const uint8_t* p, int e) {
  const int s = e / 16;
  return {Half(p + 80) * Bits(p, s, 0, 4) * TwoBitCode(p + 16, e), Half(p + 82) * Bits(p, s, 4, 4)};
}

// The 6-bit scale j of Q3_K's 12 bytes (stored +32).
int NaiveQ3Scale(const uint8_t* sc, int j) {
  const int low = j < 8 ? Bits(sc, j, 0, 4) : Bits(sc, j - 8, 4, 4);
  return (low | Bits(sc, 8 + j % 4, 2 * (j / 4), 2) << 4) - 32;
}
// Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108. The high bit of weight e is bit e/32
// of hmask[e%32]; when it is clear the code is lowered by 4. value = d*scale*(q - 4*!h).
Terms NaiveQ3_K(const uint8_t* p, int e) {
  const int q = TwoBitCode(p + 32, e) - (Bit(p, e % 32, e / 32) ? 0 : 4);
  return {Half(p + 108) * NaiveQ3Scale(p + 96, e / 16) * q, 0.0};
}

// 6-bit scale and min of sub-block s (0..7) from Q4_K/Q5_K's 12 bytes: s < 4: low 6 bits of
// bytes s and s+4; s >= 4: low/high nibble of byte s+4 plus the top 2 bits of bytes s-4 / s.
void NaiveScaleMin(const uint8_t* sc, int s, int* scale, int* min) {
  if (s < 4) {
    *scale = Bits(sc, s, 0, 6);
    *min = Bits(sc, s + 4, 0, 6);
  } else {
    *scale = Bits(sc, s + 4, 0, 4) | Bits(sc, s - 4, 6, 2) << 4;
    *min = Bits(sc, s + 4, 4, 4) | Bits(sc, s, 6, 2) << 4;
  }
}
// Nibble of weight e in Q4_K/Q5_K's qs: byte 32*(e/64) + e%32, high nibble for (e%64) >= 32.
int NibbleCode(const uint8_t* qs, int e) { return Bits(qs, 32 * (e / 64) + e % 32, 4 * ((e % 64) / 32), 4); }

// Q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16. value = d*sc*q - dmin*m.
Terms NaiveQ4_K(const uint8_t* p, int e) {
  int sc, m;
  NaiveScaleMin(p + 4, e / 32, &sc, &m);
  return {Half(p) * sc * NibbleCode(p + 16, e), Half(p + 2) * m};
}
// Q5_K: d @0, dmin @2, scales[12] @4, qh[32] @16 (fifth bit of weight e: bit e/32 of qh[e%32]),
// qs[128] @48.
Terms NaiveQ5_K(const uint8_t* p, int e) {
  int sc, m;
  NaiveScaleMin(p + 4, e / 32, &sc, &m);
  const int q = NibbleCode(p + 48, e) | Bit(p + 16, e % 32, e / 32) << 4;
  return {Half(p) * sc * q, Half(p + 2) * m};
}
// Q6_K: ql[128] @0, qh[64] @128, int8 scales[16] @192, d @208. With h = e/128, g = (e%128)/32,
// l = e%32: low 4 bits in ql[64h + l + 32*(g%2)] (high nibble when g >= 2), high 2 bits at
// bits 2g of qh[32h + l]. value = d*scale*(q - 32).
Terms NaiveQ6_K(const uint8_t* p, int e) {
  const int h = e / 128, g = (e % 128) / 32, l = e % 32;
  const int q = Bits(p, 64 * h + l + 32 * (g % 2), 4 * (g / 2), 4) | Bits(p + 128, 32 * h + l, 2 * g, 2) << 4;
  return {Half(p + 208) * (int8_t)p[192 + e / 16] * (q - 32), 0.0};
}
// Q8_K: f32 d @0, int8 qs[256] @4.
Terms NaiveQ8_K(const uint8_t* p, int e) {
  float d;
  std::memcpy(&d, p, 4);
  return {(double)d * (int8_t)p[4 + e], 0.0};
}

struct KFormat {
  DType type;
  Terms (*naive)(const uint8_t*, int);
  std::vector<int> half_offsets;  // fp16 fields, set to each class of value in the test
};
const KFormat kK[] = {{DType::kQ2_K, NaiveQ2_K, {80, 82}}, {DType::kQ3_K, NaiveQ3_K, {108}},
                      {DType::kQ4_K, NaiveQ4_K, {0, 2}},   {DType::kQ5_K, NaiveQ5_K, {0, 2}},
                      {DType::kQ6_K, NaiveQ6_K, {208}},    {DType::kQ8_K, NaiveQ8_K, {}}};

TEST(FormatsKQuants, DecodeMatchesNaiveLayoutReading) {
  std::mt19937 rng(21);
  const uint16_t classes[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xb555, 0x2e66, 0x7bff};
  for (const KFormat& f : kK) {
    const size_t bs = Traits(f.type).type_size;
    const int nblocks = 24;
    std::vector<uint8_t> bytes(bs * nblocks);
    for (auto& b : bytes) b = (uint8_t)rng();
    for (int i = 0; i < nblocks; ++i) {
      for (size_t h = 0; h < f.half_offsets.size(); ++h) {
        const uint16_t v = i < 9 ? classes[(i + h) % 9] : (uint16_t)(rng() & 0x77ff);
        std::memcpy(&bytes[i * bs + f.half_offsets[h]], &v, 2);
      }
      if (f.type == DType::kQ8_K) {
        const float d = i % 3 == 0 ? 0.0f : std::ldexp(1.0f + (float)(rng() % 1000) / 1000, (int)(rng() % 40) - 20);
        std::memcpy(&bytes[i * bs], &d, 4);
      }
    }
    std::vector<float> y(kQK_K * nblocks);
    Traits(f.type).to_float(bytes.data(), y.data(), (int64_t)y.size());
    for (int i = 0; i < nblocks; ++i) {
      for (int e = 0; e < kQK_K; ++e) {
        const Terms t = f.naive(&bytes[i * bs], e);
        const double want = t.a - t.b;
        const double tol = (std::fabs(t.a) + std::fabs(t.b)) * std::ldexp(1.0, -23) + 1e-45;
        ASSERT_NEAR(y[kQK_K * i + e], want, tol) << DTypeName(f.type) << " block " << i << " weight " << e;
      }
    }
  }
}

TEST(FormatsKQuants, HandComputedBlocks) {
  float y[kQK_K];
  // Q2_K: d = 0.5, dmin = 0.25; sub-block 9 (weights 144..159) has scale 3, min 2. Weight 150:
  // h = 1, r = 22 -> qs byte 32 + 22 = 54, bits 0..1; code 3 -> 0.5*3*3 - 0.25*2 = 4.
  BlockQ2_K a{};
  a.d = 0x3800;
  a.dmin = 0x3400;
  a.scales[9] = 0x23;
  a.qs[54] = 0x03;
  DequantizeRowQ2_K(&a, y, kQK_K);
  EXPECT_EQ(y[150], 4.0f);
  EXPECT_EQ(y[151], -0.5f);  // code 0
  EXPECT_EQ(y[0], 0.0f);     // scale 0, min 0

  // Q3_K: d = 1; sub-block 5 (weights 80..95) stores 37 (scale 37 - 32 = 5): low nibble of
  // byte 5 = 37 & 15 = 5, top bits 37 >> 4 = 2 at bits 2*(5/4) = 2..3 of byte 8 + 5%4 = 9.
  // Weight 81: qs[17] bits 4..5 (81/32 = 2), high bit = bit 2 of hmask[17]. Code 3 with the high
  // bit set: 5*3 = 15; weight 82, code 1 with it clear: 5*(1-4) = -15.
  BlockQ3_K b{};
  b.d = 0x3c00;
  b.scales[5] = 0x05;
  b.scales[9] = 0x08;
  b.qs[17] = 0x30;
  b.hmask[17] = 0x04;
  b.qs[18] = 0x10;
  DequantizeRowQ3_K(&b, y, kQK_K);
  EXPECT_EQ(y[81], 15.0f);
  EXPECT_EQ(y[82], -15.0f);
  EXPECT_EQ(y[0], 128.0f);  // stored scale 0 -> -32, code 0 with the high bit clear -> -4
}

TEST(FormatsKQuants, HandComputedBlocksK4) {
  float y[kQK_K];
  // Q4_K: d = 1, dmin = 0.5. Sub-block 5 (weights 160..191): scale 40 = 0b101000, min 17 =
  // 0b010001: byte 9 = (40 & 15) | (17 & 15) << 4 = 0x18; top bits 40>>4 = 2 -> byte 1 bits
  // 6..7; 17>>4 = 1 -> byte 5 bits 6..7. Weight 170: c = 2, byte 64 + 10, low nibble (r = 42 ->
  // high nibble since 42 >= 32). Code 7 -> 40*7 - 0.5*17 = 271.5.
  BlockQ4_K a{};
  a.d = 0x3c00;
  a.dmin = 0x3800;
  a.scales[9] = 0x18;
  a.scales[1] = 2 << 6;
  a.scales[5] = 1 << 6;
  a.qs[74] = 0x70;
  DequantizeRowQ4_K(&a, y, kQK_K);
  EXPECT_EQ(y[170], 271.5f);
  EXPECT_EQ(y[138], 0.0f);  // sub-block 4: scale (byte 8 low) 0 | byte 0 top 0; min 0

  // Q5_K: same scales; weight 170 gets the fifth bit: bit 170/32 = 5 of qh[170%32 = 10].
  BlockQ5_K b{};
  b.d = 0x3c00;
  b.dmin = 0x3800;
  std::memcpy(b.scales, a.scales, 12);
  b.qs[74] = 0x70;
  b.qh[10] = 1 << 5;
  DequantizeRowQ5_K(&b, y, kQK_K);
  EXPECT_EQ(y[170], 40.0f * 23 - 8.5f);

  // Q6_K: d = 0.25, scale[12] = -3 (weights 192..207). Weight 200: h = 1, g = 2, l = 8:
  // low nibble = high nibble of ql[64 + 8]; high bits = bits 4..5 of qh[32 + 8].
  // q = 0xA | 2 << 4 = 42 -> 0.25 * -3 * (42 - 32) = -7.5.
  BlockQ6_K c{};
  c.d = 0x3400;
  c.scales[12] = -3;
  c.ql[72] = 0xa0;
  c.qh[40] = 2 << 4;
  DequantizeRowQ6_K(&c, y, kQK_K);
  EXPECT_EQ(y[200], -7.5f);
  EXPECT_EQ(y[201], 0.25f * -3 * -32);
}

TEST(FormatsKQuants, ScaleUnpackingCoversEveryCode) {
  // Every 6-bit scale/min value in every sub-block position of the Q4_K/Q5_K packing, and every
  // 6-bit Q3_K scale, packed by hand as the layout says and read back.
  for (int s = 0; s < 8; ++s) {
    for (int v = 0; v < 64; ++v) {
      uint8_t packed[12] = {};
      const int sc = v, m = 63 - v;
      if (s < 4) {
        packed[s] = (uint8_t)sc;
        packed[s + 4] = (uint8_t)m;
      } else {
        packed[s + 4] = (uint8_t)((sc & 15) | (m & 15) << 4);
        packed[s - 4] = (uint8_t)((sc >> 4) << 6);
        packed[s] = (uint8_t)((m >> 4) << 6);
      }
      uint8_t got_sc, got_m;
      GetScaleMinK4(s, packed, &got_sc, &got_m);
      EXPECT_EQ(got_sc, sc);
      EXPECT_EQ(got_m, m);
    }
  }
  for (int j = 0; j < 16; ++j) {
    for (int v = 0; v < 64; ++v) {
      uint8_t packed[12] = {};
      if (j < 8) packed[j] = (uint8_t)(v & 15);
      else packed[j - 8] = (uint8_t)((v & 15) << 4);
      packed[8 + j % 4] = (uint8_t)((v >> 4) << (2 * (j / 4)));
      EXPECT_EQ(Q3KScale(packed, j), v - 32);
    }
  }
}

// Expected error of rounding to a uniform grid: step^2 / 12 per weight, summed over groups of
// `group` weights whose step is amax / q (symmetric) or (max - min) / q (asymmetric).
double UniformNoiseRms(const std::vector<float>& x, int group, bool symmetric, double q) {
  double s = 0;
  for (size_t b = 0; b < x.size(); b += group) {
    float mn = x[b], mx = x[b], amax = 0;
    for (int i = 0; i < group; ++i) {
      mn = std::min(mn, x[b + i]);
      mx = std::max(mx, x[b + i]);
      amax = std::max(amax, std::fabs(x[b + i]));
    }
    const double step = symmetric ? amax / q : ((double)mx - mn) / q;
    s += group * step * step / 12;
  }
  return std::sqrt(s / (double)x.size());
}

// Named per-format limits: the format's ideal grid (group size, symmetric or not, steps per
// range) and how far above uniform rounding noise its RMS error may go. The slack covers the
// quantization of the scales themselves (fp16 super-scales; 4-bit scales in Q2_K, 6-bit in
// Q3_K/Q4_K/Q5_K, 8-bit in Q6_K: a sub-block's scale is off by up to half a scale step) and
// finite-sample spread; the scale searches usually land below 1.
struct KLimits {
  DType type;
  int group;
  bool symmetric;
  double steps;  // range / step
  double rmse_slack;
};
constexpr KLimits kLimitsQ2_K{DType::kQ2_K, 16, false, 3, 1.30};
constexpr KLimits kLimitsQ3_K{DType::kQ3_K, 16, true, 4, 1.20};
constexpr KLimits kLimitsQ4_K{DType::kQ4_K, 32, false, 15, 1.25};
constexpr KLimits kLimitsQ5_K{DType::kQ5_K, 32, false, 31, 1.25};
constexpr KLimits kLimitsQ6_K{DType::kQ6_K, 16, true, 32, 1.15};
constexpr KLimits kLimitsQ8_K{DType::kQ8_K, 256, true, 127, 1.10};
const KLimits kAllLimits[] = {kLimitsQ2_K, kLimitsQ3_K, kLimitsQ4_K, kLimitsQ5_K, kLimitsQ6_K, kLimitsQ8_K};

TEST(FormatsKQuants, RoundTripRmseWithinStepLimits) {
  // Magnitudes where every scale and super-scale stays a normal fp16 number.
  for (const KLimits& lim : kAllLimits) {
    for (RowKind kind : {RowKind::kGaussian, RowKind::kOutliers, RowKind::kPositive, RowKind::kHuge}) {
      for (uint32_t seed = 0; seed < 3; ++seed) {
        const auto x = MakeRow(kind, 2048, 100 + seed);
        const auto y = RoundTrip(lim.type, x);
        const double ideal = UniformNoiseRms(x, lim.group, lim.symmetric, lim.steps);
        EXPECT_LE(testing::RmsError(x, y), lim.rmse_slack * ideal)
            << DTypeName(lim.type) << " " << testing::RowKindName(kind) << " seed " << seed;
      }
    }
  }
}

TEST(FormatsKQuants, ZeroConstantAndTinyRows) {
  for (const KLimits& lim : kAllLimits) {
    const auto zero = RoundTrip(lim.type, MakeRow(RowKind::kAllZero, 512, 1));
    for (float v : zero) ASSERT_EQ(v, 0.0f) << DTypeName(lim.type);
    // A constant row sits on the grid (all sub-scales equal the largest, so they quantize
    // exactly): only the fp16 rounding of the super-scale(s) remains, 2^-11 relative each.
    const auto c = MakeRow(RowKind::kConstant, 512, 1);
    EXPECT_LE(testing::RmsError(c, RoundTrip(lim.type, c)), 0.75 * 2 * std::ldexp(1.0, -11))
        << DTypeName(lim.type);
    // At 1e-4 the k-quant super-scales are fp16 subnormals (as in ggml): precision drops, but
    // values stay finite and the error stays below the signal.
    const auto t = MakeRow(RowKind::kTiny, 512, 1);
    const auto ty = RoundTrip(lim.type, t);
    for (float v : ty) ASSERT_TRUE(std::isfinite(v)) << DTypeName(lim.type);
    EXPECT_LT(testing::RmsError(t, ty), 0.5 * testing::Rms(t)) << DTypeName(lim.type);
  }
}

TEST(FormatsKQuants, MoreBitsMeanLessError) {
  const auto x = MakeRow(RowKind::kGaussian, 4096, 7);
  double prev = INFINITY;
  for (DType t : {DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kQ8_K}) {
    const double e = testing::RmsError(x, RoundTrip(t, x));
    EXPECT_LT(e, prev) << DTypeName(t);
    prev = e;
  }
}

TEST(FormatsKQuants, Q8_KBlockSumsAreCodeSums) {
  const auto x = MakeRow(RowKind::kOutliers, 512, 3);
  BlockQ8_K b[2];
  QuantizeRowQ8_KRef(x.data(), b, 512);
  for (const BlockQ8_K& blk : b) {
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += blk.qs[16 * j + l];
      EXPECT_EQ(blk.bsums[j], sum);
    }
  }
}

TEST(FormatsKQuants, NonFiniteInputDoesNotCrash) {
  std::vector<float> x = MakeRow(RowKind::kGaussian, 512, 9);
  x[3] = NAN;
  x[300] = -INFINITY;
  for (const KLimits& lim : kAllLimits) {
    std::vector<uint8_t> packed(RowBytes(lim.type, 512));
    Traits(lim.type).from_float(x.data(), packed.data(), 512);
  }
}

}  // namespace
}  // namespace smelt
