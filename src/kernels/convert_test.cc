// The F16C half conversions against the plain loops (formats/plain.h, themselves checked against
// exact arithmetic in core/half_test.cc): every one of the 65,536 halves widened, and floats at
// and around every rounding boundary (each half's value, the midpoints between neighbours, one
// ulp either side of them), the subnormal and overflow edges, infinities, NaNs and random values,
// in rows of every length up to 40 (so the 8-wide steps and the tails both run); and the scaled
// int8 widening for every code.
#include "kernels/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "formats/plain.h"

namespace smelt {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
bool SignallingNanHalf(fp16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0 && !(h & 0x200); }

TEST(KernelConvert, F16cWidensEveryHalfAsTheReference) {
  const HalfRowToFloatFn fast = F16cHalfRowToFloat();
  if (!fast) GTEST_SKIP() << "no F16C on this CPU (or capped)";
  std::vector<fp16_t> all(65536);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = (fp16_t)i;
  std::vector<float> want(all.size()), got(all.size());
  ConvertRowF16ToF32(all.data(), want.data(), (int64_t)all.size());
  fast(all.data(), got.data(), (int64_t)all.size());
  int compared = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (SignallingNanHalf(all[i])) {  // quieted: the same payload with the quiet bit set
      EXPECT_EQ(Bits(got[i]), Bits(want[i]) | 0x00400000u) << i;
      continue;
    }
    EXPECT_EQ(Bits(got[i]), Bits(want[i])) << "half 0x" << std::hex << i;
    ++compared;
  }
  EXPECT_EQ(compared, 65536 - 2 * 511);  // all but the 511 signalling payloads of each sign
  // Every length and offset: the 8-wide steps and the tails.
  for (int n = 0; n <= 40; ++n) {
    std::vector<float> a(n + 1, -7.0f), b(n + 1, -7.0f);
    ConvertRowF16ToF32(all.data() + 15000 + n, a.data(), n);
    fast(all.data() + 15000 + n, b.data(), n);
    EXPECT_EQ(a, b) << n;  // b[n] untouched: the -7 stays
  }
}

TEST(KernelConvert, F16cRoundsFloatsAsTheReference) {
  const FloatRowToHalfFn fast = F16cFloatRowToHalf();
  if (!fast) GTEST_SKIP() << "no F16C on this CPU (or capped)";
  std::vector<float> x;
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // every finite positive half, its midpoint to the next, ±1 ulp
    float v, next;
    const fp16_t pair[2] = {(fp16_t)h, (fp16_t)(h + 1)};
    float both[2];
    ConvertRowF16ToF32(pair, both, 2);
    v = both[0], next = both[1];
    const float mid = v + (next - v) / 2;  // exact: one more bit than a half has
    for (float f : {v, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) x.push_back(f), x.push_back(-f);
  }
  for (float f : {65504.0f, 65519.99f, 65520.0f, 65536.0f, 1e10f, std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(), 2.9802322e-8f,
                  2.9802326e-8f, 5.96e-8f, 0.0f, INFINITY, std::numeric_limits<float>::quiet_NaN(),
                  FromBits(0x7fc12345u), FromBits(0x7f812345u)})
    x.push_back(f), x.push_back(-f);
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) x.push_back(FromBits((uint32_t)rng()));
  std::vector<fp16_t> want(x.size()), got(x.size());
  ConvertRowF32ToF16(x.data(), want.data(), (int64_t)x.size());
  fast(x.data(), got.data(), (int64_t)x.size());
  int64_t differ = 0;
  for (size_t i = 0; i < x.size(); ++i) differ += got[i] != want[i];
  EXPECT_EQ(differ, 0) << "of " << x.size();
  for (int n = 0; n <= 40; ++n) {
    std::vector<fp16_t> a(n + 1, 0x1234), b(n + 1, 0x1234);
    ConvertRowF32ToF16(x.data() + 1000 + n, a.data(), n);
    fast(x.data() + 1000 + n, b.data(), n);
    EXPECT_EQ(a, b) << n;
  }
}

TEST(KernelConvert, Avx2ScaledInt8AsTheReference) {
  const ScaledInt8RowToFloatFn fast = Avx2ScaledInt8RowToFloat();
  if (!fast) GTEST_SKIP() << "no AVX2 on this CPU (or capped)";
  std::vector<int8_t> q(256);
  for (int i = 0; i < 256; ++i) q[i] = (int8_t)(i - 128);  // every code
  for (float d : {0.0f, 1.0f, 0.0123f, -3.5e-3f, 1e-30f, 3e38f / 127, std::numeric_limits<float>::denorm_min()})
    for (int n : {0, 1, 7, 8, 9, 64, 68, 256}) {
      std::vector<float> want(n + 1, -7.0f), got(n + 1, -7.0f);
      ScaledInt8RowToFloatRef(q.data() + (256 - n), d, want.data(), n);
      fast(q.data() + (256 - n), d, got.data(), n);
      EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float))) << d << " " << n;
    }
}

}  // namespace
}  // namespace smelt
