// The half-precision prompt kernel (kernels/half_gemm.h) against the exact sum in double and
// against itself token by token.
#include "kernels/half_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "formats/activation.h"
#include "formats/types.h"
#include "kernels/qdot.h"

namespace smelt {
namespace {

std::vector<float> Gaussian(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = g(rng);
  return v;
}

// Every product of two halves is exact in f32, so the only error is the f32 sum: one 16-lane chain
// of C / 16 steps, then a reduction across 16 lanes, each step rounding by at most 2^-24 of the
// magnitudes summed so far.
TEST(HalfGemm, MatchesTheExactSumAndEachTokenAlone) {
  for (DType type : {DType::kF16, DType::kBF16}) {
    const HalfGemmFn gemm = FastHalfGemm(type);
    if (!gemm) GTEST_SKIP() << "no AVX-512 on this CPU";
    for (int64_t C : {16, 200, 1024})
      for (int64_t n : {1, 13, 16})
        for (int64_t T : {1, 5, 17}) {
          const std::string what = std::string(DTypeName(type)) + " C=" + std::to_string(C) +
                                   " n=" + std::to_string(n) + " T=" + std::to_string(T);
          const size_t row = RowBytes(type, C);
          // Weights: rows of the type, decoded (exactly) to the floats the kernel reads.
          std::vector<uint8_t> wq(row * n);
          std::vector<float> w(n * C);
          const std::vector<float> w_src = Gaussian(n * C, (uint32_t)(C + n), 0.05f);
          for (int64_t r = 0; r < n; ++r) {
            Traits(type).from_float(w_src.data() + r * C, wq.data() + r * row, C);
            Traits(type).to_float(wq.data() + r * row, w.data() + r * C, C);
          }
          // Activations rounded to the type as the runtime encodes them, with outliers.
          std::vector<float> x = Gaussian(T * C, (uint32_t)(7 * C + T), 1.0f);
          for (int64_t i = 0; i < T * C; i += 37) x[i] *= 40.0f;
          std::vector<uint8_t> aq(row * T);
          std::vector<float> a(T * C);
          for (int64_t t = 0; t < T; ++t) {
            QuantizeActivationRow(type, x.data() + t * C, aq.data() + t * row, C);
            Traits(type).to_float(aq.data() + t * row, a.data() + t * C, C);
          }
          const int64_t ld = n + 3;
          std::vector<float> out(T * ld, -1.0f);
          gemm(w.data(), n, aq.data(), row, T, C, out.data(), ld);
          for (int64_t t = 0; t < T; ++t) {
            std::vector<float> alone(n);
            gemm(w.data(), n, aq.data() + t * row, row, 1, C, alone.data(), n);
            for (int64_t r = 0; r < n; ++r) {
              double exact = 0, mass = 0;
              for (int64_t c = 0; c < C; ++c) {
                exact += (double)w[r * C + c] * a[t * C + c];
                mass += std::fabs((double)w[r * C + c] * a[t * C + c]);
              }
              const double tol = (double)(C / 16 + 16) * std::ldexp(1.0, -24) * mass;
              EXPECT_NEAR(out[t * ld + r], exact, tol) << what << " t " << t << " r " << r;
              EXPECT_EQ(alone[r], out[t * ld + r]) << what << ": token " << t << " depends on the batch";
              // The scalar row dot, the reference twin, within the same bound (plus its own).
              const float ref = ReferenceQDot(type)(wq.data() + r * row, aq.data() + t * row, C);
              EXPECT_NEAR(out[t * ld + r], ref, tol + (double)C * std::ldexp(1.0, -24) * mass) << what;
            }
            for (int64_t r = n; r < ld; ++r) EXPECT_EQ(out[t * ld + r], -1.0f) << what << ": wrote past n rows";
          }
        }
  }
}

TEST(HalfGemm, OnlyHalfTypesOnAvx512) {
  EXPECT_EQ(FastHalfGemm(DType::kF16) != nullptr, CpuHasAvx512F());
  EXPECT_EQ(FastHalfGemm(DType::kQ8_0), nullptr);
  EXPECT_EQ(FastHalfGemm(DType::kF32), nullptr);
}

}  // namespace
}  // namespace smelt
