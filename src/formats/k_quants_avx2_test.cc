// The fast k-quant encoders (QuantizeRowQ*_K: AVX2 scale searches where the CPU has them)
// against the scalar reference encoders (QuantizeRowQ*_KRef, which ggml_parity_test.cc holds
// to ggml's own bytes): identical bytes on many rows, including the awkward ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/cpu.h"
#include "formats/format_test_util.h"
#include "formats/k_quants.h"
#include "formats/k_quants_search.h"

namespace smelt {
namespace {

using testing::MakeRow;
using testing::RowKind;

constexpr int64_t kN = 4 * kQK_K;

// Rows that exercise every branch of the searches: the shared row kinds, sub-blocks of wildly
// different magnitudes (some zero, some constant, some one-signed), values on rounding ties,
// signed zeros, subnormals, very large values, and non-finite values.
std::vector<std::pair<std::string, std::vector<float>>> AwkwardRows() {
  std::vector<std::pair<std::string, std::vector<float>>> rows;
  for (RowKind kind : testing::kAllRowKinds) {
    for (uint32_t seed = 0; seed < 4; ++seed) {
      rows.push_back({testing::RowKindName(kind) + std::to_string(seed), MakeRow(kind, kN, 40 + seed)});
    }
  }
  std::mt19937 rng(123);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  for (int r = 0; r < 200; ++r) {
    std::vector<float> x(kN);
    for (int64_t s = 0; s < kN; s += 16) {  // per 16 weights: a random magnitude and shape
      const float mag = std::pow(10.0f, -12.0f + 16.0f * uni(rng));
      const int shape = (int)(uni(rng) * 8);
      const float c = gauss(rng);
      for (int64_t i = s; i < s + 16; ++i) {
        const float g = gauss(rng);
        switch (shape) {
          case 0: x[i] = 0.0f; break;
          case 1: x[i] = mag * c; break;                      // constant
          case 2: x[i] = mag * (std::fabs(g) + 0.1f); break;  // positive
          case 3: x[i] = -mag * std::fabs(g); break;          // non-positive
          case 4: x[i] = 0.5f * std::round(8 * g); break;     // many equal values, ties
          case 5: x[i] = (i % 3 == 0) ? -0.0f : mag * g; break;
          default: x[i] = mag * g; break;
        }
      }
    }
    rows.push_back({"mixed" + std::to_string(r), x});
  }
  std::vector<float> sub(kN);
  for (int64_t i = 0; i < kN; ++i) sub[i] = std::numeric_limits<float>::denorm_min() * (float)(i % 7 - 3);
  rows.push_back({"subnormal", sub});
  std::vector<float> big = MakeRow(RowKind::kGaussian, kN, 5);
  for (float& v : big) v *= 3e37f;
  rows.push_back({"near-max", big});
  std::vector<float> bad = MakeRow(RowKind::kGaussian, kN, 6);
  bad[3] = NAN;
  bad[300] = -INFINITY;
  bad[600] = INFINITY;
  rows.push_back({"non-finite", bad});
  return rows;
}

template <class Block>
void ExpectSameBytes(const char* name, void (*fast)(const float*, Block*, int64_t),
                     void (*ref)(const float*, Block*, int64_t)) {
  int rows = 0;
  for (const auto& [label, x] : AwkwardRows()) {
    std::vector<Block> a(kN / kQK_K), b(kN / kQK_K);
    std::memset(a.data(), 0xA5, a.size() * sizeof(Block));  // unwritten bytes would differ
    std::memset(b.data(), 0x5A, b.size() * sizeof(Block));
    fast(x.data(), a.data(), kN);
    ref(x.data(), b.data(), kN);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(Block)), 0) << name << " row " << label;
    ++rows;
  }
  EXPECT_GT(rows, 200);
}

TEST(FormatsKQuantsFast, RuntimeDispatchPicksAvx2WhereAvailable) {
  if (!CpuHasAvx2()) GTEST_SKIP() << "CPU without AVX2: the fast encoders are the reference";
  ASSERT_NE(kquant::Avx2Searches(), nullptr);
}

TEST(FormatsKQuantsFast, SameBytesAsReference) {
  if (!CpuHasAvx2()) GTEST_SKIP() << "CPU without AVX2: the fast encoders are the reference";
  ExpectSameBytes<BlockQ2_K>("q2_K", QuantizeRowQ2_K, QuantizeRowQ2_KRef);
  ExpectSameBytes<BlockQ3_K>("q3_K", QuantizeRowQ3_K, QuantizeRowQ3_KRef);
  ExpectSameBytes<BlockQ4_K>("q4_K", QuantizeRowQ4_K, QuantizeRowQ4_KRef);
  ExpectSameBytes<BlockQ5_K>("q5_K", QuantizeRowQ5_K, QuantizeRowQ5_KRef);
  ExpectSameBytes<BlockQ6_K>("q6_K", QuantizeRowQ6_K, QuantizeRowQ6_KRef);
}

// The searches on their own, before scale packing and re-quantization hide any difference:
// the f32 scales and mins must match bit for bit, and every code.
TEST(FormatsKQuantsFast, SearchesMatchBitForBit) {
  if (!CpuHasAvx2()) GTEST_SKIP() << "CPU without AVX2";
  const kquant::Searches& ref = kquant::ReferenceSearches();
  const kquant::Searches& fast = *kquant::Avx2Searches();
  auto same = [](const void* a, const void* b, size_t n) { return std::memcmp(a, b, n) == 0; };
  for (const auto& [label, x] : AwkwardRows()) {
    for (int64_t off = 0; off < kN; off += kQK_K) {
      const float* xb = x.data() + off;
      float s1[16], s2[16], m1[16], m2[16];
      uint8_t u1[kQK_K], u2[kQK_K];
      int8_t i1[kQK_K], i2[kQK_K];
      ref.k4(xb, 15, -1.f, 20, s1, m1, u1);
      fast.k4(xb, 15, -1.f, 20, s2, m2, u2);
      EXPECT_TRUE(same(s1, s2, 32) && same(m1, m2, 32) && same(u1, u2, kQK_K)) << "k4/15 " << label;
      ref.k4(xb, 31, -0.5f, 15, s1, m1, u1);
      fast.k4(xb, 31, -0.5f, 15, s2, m2, u2);
      EXPECT_TRUE(same(s1, s2, 32) && same(m1, m2, 32) && same(u1, u2, kQK_K)) << "k4/31 " << label;
      ref.q2(xb, s1, m1, u1);
      fast.q2(xb, s2, m2, u2);
      EXPECT_TRUE(same(s1, s2, 64) && same(m1, m2, 64) && same(u1, u2, kQK_K)) << "q2 " << label;
      ref.q3(xb, s1, i1);
      fast.q3(xb, s2, i2);
      EXPECT_TRUE(same(s1, s2, 64) && same(i1, i2, kQK_K)) << "q3 " << label;
      ref.q6(xb, s1, i1);
      fast.q6(xb, s2, i2);
      EXPECT_TRUE(same(s1, s2, 64) && same(i1, i2, kQK_K)) << "q6 " << label;
    }
  }
}

}  // namespace
}  // namespace smelt
