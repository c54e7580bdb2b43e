// The activation encoders' own properties; their bytes are checked against ggml's CPU library in
// formats/ggml_parity_test.cc.
#include "formats/activation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/half.h"
#include "formats/activation_simd.h"
#include "formats/per_channel.h"
#include "formats/k_quants.h"
#include "formats/format_test_util.h"
#include "formats/types.h"

namespace smelt {
namespace {

// Rounding to a Q8 activation moves each value by at most half a step of its block,
// step = amax / 127, plus 127 times the rounding of the scale to fp16 (2^-11 relative, or 2^-25
// absolute among fp16's subnormals), keeps zeros and the
// block's largest value up to the scale's rounding, and is idempotent.
TEST(FormatsActivation, Q8RoundingStaysWithinHalfAStep) {
  const int n = 512;
  for (DType w : {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0, DType::kQ4_K}) {
    const int block = (int)Traits(ActivationType(w)).block_size;
    for (testing::RowKind kind : testing::kAllRowKinds) {
      const auto x = testing::MakeRow(kind, n, 7);
      std::vector<float> y(n), again(n);
      RoundActivationRow(w, x.data(), y.data(), n);
      RoundActivationRow(w, y.data(), again.data(), n);
      for (int b = 0; b < n; b += block) {
        float amax = 0;
        for (int j = b; j < b + block; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float step = amax / 127;
        for (int j = b; j < b + block; ++j) {
          ASSERT_LE(std::fabs(y[j] - x[j]), step * (0.5f + 127.0f / 2048) + 127 * 0x1p-25f) << DTypeName(w) << " " << j;
          if (x[j] == 0) {
            ASSERT_EQ(y[j], 0.0f);
          }
        }
      }
      for (int j = 0; j < n; ++j) ASSERT_NEAR(again[j], y[j], 1e-6f * std::fabs(y[j])) << DTypeName(w) << " " << j;
    }
  }
}

TEST(FormatsActivation, FloatWeightsKeepTheirActivationsOrRoundToTheirType) {
  const auto x = testing::MakeRow(testing::RowKind::kGaussian, 64, 3);
  std::vector<float> y(64);
  RoundActivationRow(DType::kF32, x.data(), y.data(), 64);
  EXPECT_EQ(y, x);
  RoundActivationRow(DType::kF16, x.data(), y.data(), 64);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(y[i], Fp16ToFloat(FloatToFp16(x[i])));
  // In place.
  std::vector<float> z = x;
  RoundActivationRow(DType::kQ8_0, z.data(), z.data(), 64);
  RoundActivationRow(DType::kQ8_0, x.data(), y.data(), 64);
  EXPECT_EQ(z, y);
}

// Halves round to even: a block whose largest value is 127 holds its values exactly, so 2.5 and
// 3.5 sit on ties.
TEST(FormatsActivation, Q8TiesRoundToEven) {
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f, x[1] = 2.5f, x[2] = 3.5f, x[3] = -2.5f;
  std::vector<float> y(32);
  RoundActivationRow(DType::kQ8_0, x.data(), y.data(), 32);
  EXPECT_EQ(y[0], 127.0f);
  EXPECT_EQ(y[1], 2.0f);
  EXPECT_EQ(y[2], 4.0f);
  EXPECT_EQ(y[3], -2.0f);
}

// The AVX-512 block encoder against the reference, bit for bit: Gaussian blocks, blocks of exact
// halves (ties: to even in both), zero, tiny and huge blocks; non-finite blocks are refused (the
// reference encodes them).
TEST(FormatsActivation, Avx512Q8BlockEncoderIsTheReferenceBitForBit) {
  if (!CpuHasAvx512F() || !Avx512EncodeQ8Block()) GTEST_SKIP() << "no AVX-512 on this CPU";
  const EncodeQ8BlockFn fast = Avx512EncodeQ8Block();
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<std::vector<float>> blocks;
  for (int b = 0; b < 200; ++b) {
    std::vector<float> x(32);
    for (float& v : x) v = g(rng) * std::ldexp(1.0f, (int)(rng() % 40) - 20);
    blocks.push_back(x);
  }
  std::vector<float> halves(32);  // amax 127: the scale is 1, so k + 0.5 is a tie
  for (int j = 0; j < 32; ++j) halves[j] = (j == 0) ? 127.0f : (float)(j % 9) - 4.5f;
  blocks.push_back(halves);
  blocks.push_back(std::vector<float>(32, 0.0f));
  blocks.push_back(std::vector<float>(32, 1e-40f));
  blocks.push_back(std::vector<float>(32, -3e38f));
  for (const std::vector<float>& x : blocks) {
    int8_t want[32], got[32];
    const float d = ReferenceEncodeQ8Block(x.data(), want);
    float amax = -1.0f;
    ASSERT_TRUE(fast(x.data(), got, &amax));
    EXPECT_EQ(amax / 127.0f, d);
    EXPECT_EQ(std::memcmp(want, got, 32), 0);
  }
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<float> x(32, 1.0f);
    x[7] = bad;
    int8_t q[32];
    float amax;
    EXPECT_FALSE(fast(x.data(), q, &amax)) << bad;
  }
}

// The per-token int8 row twin writes QuantizeRowI8PC's bytes: Gaussian rows over 40 octaves of
// every length from 1 to 70 and a long one, exact half-way products of both signs (amax 127: the
// reciprocal scale is 1), zero, subnormal and huge rows; rows with a non-finite value, or whose
// scale's reciprocal overflows, are refused.
TEST(FormatsActivation, Avx512I8RowEncoderIsTheReferenceBitForBit) {
  const EncodeI8RowFn fast = CpuHasAvx512F() ? Avx512EncodeI8Row() : nullptr;
  if (!fast) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(9);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<std::vector<float>> rows;
  for (int n = 1; n <= 70; ++n) {
    std::vector<float> x(n);
    for (float& v : x) v = g(rng) * std::ldexp(1.0f, (int)(rng() % 40) - 20);
    rows.push_back(x);
  }
  std::vector<float> big(4099);
  for (float& v : big) v = g(rng);
  rows.push_back(big);
  std::vector<float> halves(40);
  for (int j = 0; j < 40; ++j) halves[j] = (j == 0) ? 127.0f : (float)(j % 9) - 4.5f;
  rows.push_back(halves);
  rows.push_back(std::vector<float>(33, 0.0f));
  rows.push_back(std::vector<float>(33, 1e-40f));
  rows.push_back(std::vector<float>(33, -3e38f));
  for (const std::vector<float>& x : rows) {
    const int64_t n = (int64_t)x.size();
    std::vector<uint8_t> want(4 + n), got(4 + n, 0xAB);
    QuantizeRowI8PC(x.data(), want.data(), n);
    if (!fast(x.data(), got.data(), n)) {
      EXPECT_EQ(x[0], 1e-40f) << "only the subnormal row's reciprocal overflows";
      continue;
    }
    EXPECT_EQ(got, want) << "n " << n;
  }
  for (float bad : {NAN, INFINITY, -INFINITY})
    for (int64_t at : {3, 20}) {
      std::vector<float> x(21, 1.0f);
      x[at] = bad;
      std::vector<uint8_t> row(4 + 21);
      EXPECT_FALSE(fast(x.data(), row.data(), 21)) << bad << " at " << at;
    }
}

// The Q8_K twins (AVX-512, AVX2) write QuantizeRowQ8_KRef's bytes: Gaussian blocks over 40 octaves, the largest
// magnitude twice with either sign first (the first one's sign sets the scale), -127·k/2 ties,
// zero and huge blocks; blocks with a non-finite value or a scale that overflows (a subnormal
// maximum) are refused.
TEST(FormatsActivation, Q8KBlockEncoderTwinsAreTheReferenceBitForBit) {
  std::vector<EncodeQ8KBlockFn> twins;
  if (CpuHasAvx512F() && Avx512EncodeQ8KBlock()) twins.push_back(Avx512EncodeQ8KBlock());
  if (CpuHasAvx2FmaF16c() && Avx2EncodeQ8KBlock()) twins.push_back(Avx2EncodeQ8KBlock());
  if (twins.empty()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(9);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<std::vector<float>> blocks;
  for (int b = 0; b < 100; ++b) {
    std::vector<float> x(kQK_K);
    for (float& v : x) v = g(rng) * std::ldexp(1.0f, (int)(rng() % 40) - 20);
    blocks.push_back(x);
  }
  for (float first : {5.0f, -5.0f}) {  // the same magnitude at 30 and 200
    std::vector<float> x(kQK_K, 0.25f);
    x[30] = first, x[200] = -first;
    blocks.push_back(x);
  }
  std::vector<float> ties(kQK_K);  // max -127: scale 1, so k + 0.5 is a tie
  for (int j = 0; j < kQK_K; ++j) ties[j] = j == 3 ? -127.0f : (float)(j % 9) - 4.5f;
  blocks.push_back(ties);
  blocks.push_back(std::vector<float>(kQK_K, 0.0f));
  blocks.push_back(std::vector<float>(kQK_K, -3e38f));
  for (const EncodeQ8KBlockFn fast : twins)
  for (const std::vector<float>& x : blocks) {
    BlockQ8_K want, got;
    std::memset(&got, 0xAB, sizeof got);
    QuantizeRowQ8_KRef(x.data(), &want, kQK_K);
    ASSERT_TRUE(fast(x.data(), &got));
    EXPECT_EQ(std::memcmp(&want, &got, sizeof want), 0);
  }
  for (const EncodeQ8KBlockFn fast : twins)
  for (float bad : {NAN, INFINITY, -INFINITY, 1e-40f}) {
    std::vector<float> x(kQK_K, bad == 1e-40f ? 0.0f : 1.0f);
    x[77] = bad;
    BlockQ8_K y;
    EXPECT_FALSE(fast(x.data(), &y)) << bad;
  }
}

}  // namespace
}  // namespace smelt
