// The AMX k-quant prompt kernels (kernels/kquant_gemm.h) against the scalar row dot, bit for bit,
// with random codes and scale bytes (every 6-bit Q4_K/Q5_K scale and minimum, every Q5_K fifth bit, every signed Q6_K scale),
// odd row and token counts.
#include "kernels/kquant_gemm.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "formats/activation.h"
#include "formats/k_quants.h"
#include "formats/types.h"
#include "kernels/qdot.h"

namespace smelt {
namespace {

TEST(KQuantGemm, AmxGivesTheRowDotsBits) {
  if (!CpuHasAmxInt8()) GTEST_SKIP() << "no AMX-INT8 on this CPU";
  std::mt19937 rng(5);
  for (DType type : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K})
  for (int64_t C : {256, 768})
    for (int64_t n : {1, 13, 16})
      for (int64_t T : {1, 5, 17, 40}) {
        const PromptGemm k = AmxKQuantGemm(type);
        ASSERT_TRUE(k);
        const std::string what = std::string(DTypeName(type)) + " C=" + std::to_string(C) + " n=" + std::to_string(n) + " T=" + std::to_string(T);
        const size_t row = RowBytes(type, C), a_row = RowBytes(DType::kQ8_K, C);
        // Weights: random codes, scale bytes and half scales (every 6-bit scale and minimum occurs).
        std::vector<uint8_t> w(row * n + 5);
        for (uint8_t& b : w) b = (uint8_t)(rng() & 0xFF);
        auto half = [&] { return FloatToFp16(std::ldexp(1.0f + (float)(rng() % 100) / 100.0f, -(int)(rng() % 12))); };
        for (int64_t r = 0; r < n; ++r)
          for (int64_t b = 0; b < C / kQK_K; ++b) {
            if (type == DType::kQ4_K) {
              auto* blk = reinterpret_cast<BlockQ4_K*>(w.data() + r * row) + b;
              blk->d = half(), blk->dmin = half();
            } else if (type == DType::kQ5_K) {
              auto* blk = reinterpret_cast<BlockQ5_K*>(w.data() + r * row) + b;
              blk->d = half(), blk->dmin = half();
            } else {
              reinterpret_cast<BlockQ6_K*>(w.data() + r * row)[b].d = half();
            }
          }
        std::normal_distribution<float> g(0.0f, 1.0f);
        std::vector<float> x(T * C);
        for (float& v : x) v = g(rng);
        for (int64_t i = 0; i < T * C; i += 53) x[i] *= 30.0f;
        std::vector<uint8_t> a(a_row * T);
        for (int64_t t = 0; t < T; ++t) QuantizeActivationRow(DType::kQ8_K, x.data() + t * C, a.data() + t * a_row, C);
        std::vector<float> scratch(PromptGemmScratchFloats(C));
        const int64_t ld = n + 2;
        std::vector<float> out(T * ld, -1.0f);
        k.gemm(w.data(), row, n, a.data(), a_row, T, C, out.data(), ld, scratch.data());
        const QDotFn ref = ReferenceQDot(type);
        for (int64_t t = 0; t < T; ++t) {
          for (int64_t r = 0; r < n; ++r)
            EXPECT_EQ(out[t * ld + r], ref(w.data() + r * row, a.data() + t * a_row, C)) << what << " t " << t << " r " << r;
          for (int64_t r = n; r < ld; ++r) EXPECT_EQ(out[t * ld + r], -1.0f) << what << ": wrote past n rows";
        }
      }
}

TEST(KQuantGemm, OnlyTheKQuantsWithAKernelOnAmx) {
  EXPECT_EQ((bool)AmxKQuantGemm(DType::kQ4_K), CpuHasAmxInt8());
  EXPECT_EQ((bool)AmxKQuantGemm(DType::kQ5_K), CpuHasAmxInt8());
  EXPECT_EQ((bool)AmxKQuantGemm(DType::kQ6_K), CpuHasAmxInt8());
  for (DType t : {DType::kQ4_0, DType::kQ3_K, DType::kF16}) EXPECT_FALSE(AmxKQuantGemm(t));
}

}  // namespace
}  // namespace smelt
