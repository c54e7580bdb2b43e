// The half-precision prompt kernels (kernels/half_gemm.h), each twin this CPU has, against the
// exact sum in double, against the scalar row dot and against themselves token by token.
#include "kernels/half_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/half.h"
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

// Every product of two halves is exact in f32 in every twin, so the only error is the f32 sum.
// AVX-512: one 16-lane chain of C / 16 steps, then a reduction across 16 lanes, each step rounding
// by at most 2^-24 of the magnitudes summed so far. AVX2: an 8-lane chain of C / 8 steps, a
// reduction across 8 lanes (3 steps) and the last C % 8 columns one by one (at most 7). AMX: the
// four bf16 partial products of each (hi·hi, lo·hi, hi·lo, lo·lo, their magnitudes together at
// most (1 + 2^-8)² of the product's) are added one at a time in the worst case, 4·C roundings.
struct Twin {
  const char* name;
  PromptGemm (*get)(DType);
  double roundings_per_column;
  double roundings_extra;
};
constexpr Twin kTwins[] = {{"avx2", Avx2HalfGemm, 1.0 / 8, 10},
                           {"avx512", Avx512HalfGemm, 1.0 / 16, 16},
                           {"amx", AmxHalfGemm, 4.0 * 1.01, 16}};

TEST(HalfGemm, MatchesTheExactSumAndEachTokenAlone) {
  int ran = 0;
  for (const Twin& twin : kTwins)
    for (DType type : {DType::kF16, DType::kBF16}) {
      const PromptGemm k = twin.get(type);
      if (!k) continue;
      ++ran;
      for (int64_t C : {16, 200, 1024})
        for (int64_t n : {1, 13, 16})
          for (int64_t T : {1, 5, 17, 70}) {
            const std::string what = std::string(twin.name) + " " + std::string(DTypeName(type)) + " C=" + std::to_string(C) +
                                     " n=" + std::to_string(n) + " T=" + std::to_string(T);
            const size_t row = RowBytes(type, C);
            // Weights: rows of the type (their rows a little apart), decoded exactly for the sums.
            const size_t w_stride = row + 6;
            std::vector<uint8_t> wq(w_stride * n);
            std::vector<float> w(n * C);
            const std::vector<float> w_src = Gaussian(n * C, (uint32_t)(C + n), 0.05f);
            for (int64_t r = 0; r < n; ++r) {
              Traits(type).from_float(w_src.data() + r * C, wq.data() + r * w_stride, C);
              Traits(type).to_float(wq.data() + r * w_stride, w.data() + r * C, C);
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
            std::vector<float> scratch(PromptGemmScratchFloats(C));
            std::vector<uint8_t> layout(PromptTokensBytes(T, C));
            const auto run = [&](const uint8_t* rows, int64_t tokens, float* out, int64_t ld) {
              const PromptTokens tk = PreparePromptTokens(k, rows, row, tokens, C, layout.data());
              k.gemm(wq.data(), w_stride, n, tk.data, tk.stride, tokens, C, out, ld, scratch.data());
            };
            const int64_t ld = n + 3;
            std::vector<float> out(T * ld, -1.0f);
            run(aq.data(), T, out.data(), ld);
            for (int64_t t = 0; t < T; ++t) {
              std::vector<float> alone(n);
              run(aq.data() + t * row, 1, alone.data(), n);
              for (int64_t r = 0; r < n; ++r) {
                double exact = 0, mass = 0;
                for (int64_t c = 0; c < C; ++c) {
                  exact += (double)w[r * C + c] * a[t * C + c];
                  mass += std::fabs((double)w[r * C + c] * a[t * C + c]);
                }
                const double tol =
                    ((double)C * twin.roundings_per_column + twin.roundings_extra) * std::ldexp(1.0, -24) * mass;
                EXPECT_NEAR(out[t * ld + r], exact, tol) << what << " t " << t << " r " << r;
                EXPECT_EQ(alone[r], out[t * ld + r]) << what << ": token " << t << " depends on the batch";
                // The scalar row dot, the reference twin, within the same bound (plus its own).
                const float ref = ReferenceQDot(type)(wq.data() + r * w_stride, aq.data() + t * row, C);
                EXPECT_NEAR(out[t * ld + r], ref, tol + (double)C * std::ldexp(1.0, -24) * mass) << what;
              }
              for (int64_t r = n; r < ld; ++r) EXPECT_EQ(out[t * ld + r], -1.0f) << what << ": wrote past n rows";
            }
          }
    }
  if (ran == 0) GTEST_SKIP() << "no half-precision prompt kernel on this CPU";
}

// The AMX twin is exact where the sum is: weights and activations of 9 or 10 significant bits (so
// both need their lo part), every partial sum a multiple of 1/2 below 2^23.
TEST(HalfGemm, AmxKeepsEveryBitOfTheHalves) {
  const PromptGemm k = AmxHalfGemm(DType::kF16);
  if (!k) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  const int64_t C = 96, n = 16, T = 20;
  std::vector<fp16_t> w(n * C), a(T * C);
  std::vector<double> wf(n * C), af(T * C);
  for (int64_t i = 0; i < n * C; ++i) wf[i] = (double)(((i * 37) % 1023) - 511), w[i] = FloatToFp16((float)wf[i]);
  for (int64_t i = 0; i < T * C; ++i) af[i] = (double)(((i * 11) % 511) - 255) / 2.0, a[i] = FloatToFp16((float)af[i]);
  std::vector<float> scratch(PromptGemmScratchFloats(C)), out(T * n);
  std::vector<uint8_t> layout(PromptTokensBytes(T, C));
  const PromptTokens tk =
      PreparePromptTokens(k, reinterpret_cast<const uint8_t*>(a.data()), 2 * C, T, C, layout.data());
  k.gemm(reinterpret_cast<const uint8_t*>(w.data()), 2 * C, n, tk.data, tk.stride, T, C, out.data(), n,
         scratch.data());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < n; ++r) {
      double exact = 0;
      for (int64_t c = 0; c < C; ++c) exact += wf[r * C + c] * af[t * C + c];
      EXPECT_EQ(out[t * n + r], (float)exact) << "t " << t << " r " << r;
    }
}

TEST(HalfGemm, OnlyHalfTypesAndTheFastestTwin) {
  EXPECT_EQ((bool)FastPromptGemm(DType::kF16), CpuHasAvx2FmaF16c());
  EXPECT_EQ((bool)Avx2HalfGemm(DType::kF16), CpuHasAvx2FmaF16c());
  EXPECT_EQ((bool)AmxHalfGemm(DType::kBF16), CpuHasAmxBf16());
  if (CpuHasAmxBf16()) {
    EXPECT_EQ(FastPromptGemm(DType::kF16).gemm, AmxHalfGemm(DType::kF16).gemm);
  }
  for (DType t : {DType::kQ8_0, DType::kF32}) {
    EXPECT_FALSE(FastPromptGemm(t));
    EXPECT_FALSE(AmxHalfGemm(t));
    EXPECT_FALSE(Avx512HalfGemm(t));
    EXPECT_FALSE(Avx2HalfGemm(t));
  }
}

}  // namespace
}  // namespace smelt
