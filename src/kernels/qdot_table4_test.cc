// The table-4 row dots (kernels/qdot_table4.h: i4s/i4a per row, km4_pc against
// f32 activations): every twin against the decoded row's dot summed in double, the four-token
// form against four single calls, and MatMul on such weights against MatMul on the decoded ones.
#include "kernels/qdot_table4.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/half.h"
#include "formats/activation.h"
#include "formats/types.h"
#include "kernels/matmul.h"
#include "kernels/qdot_test_util.h"
#include "tiny_models.h"

namespace smelt {
namespace table4_test {
namespace {

// A row of n weights: random code bytes, each header's halves (d, m, or the 16 centroids) of every
// kind of testing::ScaleOfKind in turn from `seed`.
std::vector<uint8_t> RandomRow(DType type, int64_t n, uint32_t seed) {
  const table4::Layout l = table4::LayoutOf(type);
  std::mt19937 rng(seed);
  std::vector<uint8_t> row(RowBytes(type, n));
  for (uint8_t& b : row) b = (uint8_t)rng();
  const int64_t groups = l.group == 0 ? 1 : n / l.group;
  const size_t block = l.group == 0 ? 0 : (size_t)l.header + l.group / 2;
  for (int64_t g = 0; g < groups; ++g)
    for (int h = 0; h < l.header / 2; ++h) {
      const fp16_t v = testing::ScaleOfKind(g + h + seed, rng);
      std::memcpy(row.data() + g * block + 2 * h, &v, sizeof v);
    }
  return row;
}

// n activations, runs of 32 scaled by 1, 0, 100 or 1e-6 in turn.
std::vector<float> RandomActivations(int64_t n, uint32_t seed) {
  std::vector<float> x = tiny::RandomVector(n, seed);
  const float factors[] = {1.0f, 0.0f, 100.0f, 1e-6f};
  for (int64_t i = 0; i < n; ++i) x[i] *= factors[(i / 32 + seed) % 4];
  return x;
}

std::vector<int64_t> Lengths(DType type) {
  const int g = table4::LayoutOf(type).group;
  if (g == 0) return {8, 40, 64, 72, 120, 1000, 4096};  // per row: any multiple of 8
  return {g, 3 * (int64_t)g, 1024 + g, 4096};
}

struct Twin {
  std::string name;
  QDotFn fn;
};

std::vector<Twin> Twins(DType type) {
  std::vector<Twin> twins = {{"reference", ReferenceQDot(type)}};
  if (CpuHasAvx2FmaF16c()) twins.push_back({"avx2", table4::Avx2Dot(type)});
  if (QDotFn f = table4::Avx512Dot(type)) twins.push_back({"avx512", f});
  return twins;
}

// Each twin within the f32 rounding of a sum of n terms of the exact dot of the decoded row.
TEST(QDotTable4, EveryTwinAgreesWithTheDecodedRowsDoubleSum) {
  for (DType type : table4::kTypes) {
    ASSERT_TRUE(table4::IsTable4(type));
    EXPECT_EQ(ActivationType(type), DType::kF32) << DTypeName(type);
    for (int64_t n : Lengths(type))
      for (uint32_t seed : {1u, 2u, 3u}) {
        const std::vector<uint8_t> w = RandomRow(type, n, seed + 10 * (uint32_t)n);
        const std::vector<float> x = RandomActivations(n, seed);
        std::vector<float> decoded(n);
        Traits(type).to_float(w.data(), decoded.data(), n);
        double exact = 0, mass = 0;
        for (int64_t i = 0; i < n; ++i) exact += (double)decoded[i] * x[i], mass += std::fabs((double)decoded[i] * x[i]);
        const double tol = (double)(n + 2) * std::ldexp(mass, -23);
        for (const Twin& t : Twins(type)) {
          ASSERT_NE(t.fn, nullptr) << DTypeName(type) << " " << t.name;
          EXPECT_NEAR(t.fn(w.data(), x.data(), n), exact, tol) << DTypeName(type) << " " << t.name << " n " << n;
        }
      }
  }
}

// The reference is the decoded row summed in order in f32: exactly that loop's bits.
TEST(QDotTable4, ReferenceIsTheDecodedRowSummedInOrder) {
  for (DType type : table4::kTypes) {
    const int64_t n = Lengths(type)[1];
    const std::vector<uint8_t> w = RandomRow(type, n, 5);
    const std::vector<float> x = RandomActivations(n, 6);
    std::vector<float> decoded(n);
    Traits(type).to_float(w.data(), decoded.data(), n);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += decoded[i] * x[i];
    EXPECT_EQ(ReferenceQDot(type)(w.data(), x.data(), n), sum) << DTypeName(type);
  }
}

// The AVX-512 four-token form gives four single calls' bits, on weight rows and activation rows
// at any byte alignment (activation rows strided with padding).
TEST(QDotTable4, FourTokensAreFourSingleCallsAndRowsMayStartAnywhere) {
  for (DType type : table4::kTypes) {
    const QDotFn one = table4::Avx512Dot(type);
    const QDotX4Fn four = table4::Avx512DotX4(type);
    if (!one || !four) GTEST_SKIP() << "no AVX-512 VBMI on this CPU";
    EXPECT_EQ(FastQDot(type), one) << DTypeName(type);
    EXPECT_EQ(FastQDotX4(type), four) << DTypeName(type);
    for (int64_t n : Lengths(type)) {
      const std::vector<uint8_t> w = RandomRow(type, n, 7 + (uint32_t)n);
      const size_t stride = (size_t)n + 3;  // floats apart: rows at every alignment mod 16 bytes
      std::vector<float> a(4 * stride + 1);
      for (int k = 0; k < 4; ++k) {
        const std::vector<float> x = RandomActivations(n, 20 + k);
        std::memcpy(a.data() + 1 + k * stride, x.data(), sizeof(float) * n);
      }
      std::vector<uint8_t> shifted(w.size() + 3);
      std::memcpy(shifted.data() + 3, w.data(), w.size());
      float out[4];
      four(shifted.data() + 3, a.data() + 1, stride * sizeof(float), n, out);
      for (int k = 0; k < 4; ++k)
        EXPECT_EQ(out[k], one(w.data(), a.data() + 1 + k * stride, n)) << DTypeName(type) << " n " << n << " row " << k;
    }
  }
}

// MatMul on table-4 weights (the row dots, from 1 to a prompt's 20 tokens) against MatMul on the
// decoded f32 weights, within the f32 rounding of both sums.
TEST(QDotTable4, MatMulMatchesTheDecodedWeights) {
  const int64_t C = 1024, OC = 19;
  for (DType type : table4::kTypes) {
    const Tensor f32 = MakeF32Tensor("w", {C, OC}, tiny::RandomVector(C * OC, 31));
    const Tensor w = tiny::EncodeTensor(f32, type);
    std::vector<float> dense(C * OC);
    for (int64_t o = 0; o < OC; ++o) ReadRowF32(w, o, dense.data() + o * C);
    const Tensor decoded = MakeF32Tensor("w", {C, OC}, dense);
    for (int64_t T : {1, 5, 20}) {
      const std::vector<float> x = RandomActivations(T * C, 40 + (uint32_t)T);
      std::vector<float> got(T * OC), want(T * OC);
      MatMul(w, x.data(), T, got.data(), 2, Activations::kGgml);
      MatMul(decoded, x.data(), T, want.data(), 1, Activations::kExact);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t o = 0; o < OC; ++o) {
          double mass = 0;
          for (int64_t c = 0; c < C; ++c) mass += std::fabs((double)dense[o * C + c] * x[t * C + c]);
          EXPECT_NEAR(got[t * OC + o], want[t * OC + o], 2.0 * (C + 2) * std::ldexp(mass, -23))
              << DTypeName(type) << " T " << T << " t " << t << " o " << o;
        }
    }
  }
}

}  // namespace
}  // namespace table4_test
}  // namespace smelt
