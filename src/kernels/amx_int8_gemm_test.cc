// The AMX-INT8 prompt kernels (kernels/amx_int8_gemm.h) against the scalar row dot, bit for bit,
// with random codes and scale bytes (every Q2_K scale and minimum, every signed Q3_K scale and high bit, every 6-bit Q4_K/Q5_K scale and minimum, every Q5_K fifth bit, every signed Q6_K scale),
// odd row and token counts; w8a8 with row lengths that end in a partial 64-column group.
#include "kernels/amx_int8_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "formats/activation.h"
#include "formats/k_quants.h"
#include "formats/sparse24.h"
#include "formats/types.h"
#include "kernels/qdot.h"

namespace smelt {
namespace {

// Runs k on the n weight rows w (w_stride apart) of `type` against T random activation rows (with
// outliers) encoded for it, and expects every output to be the reference row dot's bits and
// nothing written past n rows.
void ExpectRowDotBits(const PromptGemm& k, DType type, const std::vector<uint8_t>& w, size_t w_stride, int64_t n,
                      int64_t C, int64_t T, std::mt19937& rng, const std::string& what) {
  const DType act = ActivationType(type);
  const size_t a_row = RowBytes(act, C);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(T * C);
  for (float& v : x) v = g(rng);
  for (int64_t i = 0; i < T * C; i += 47) x[i] *= 30.0f;
  std::vector<uint8_t> a(a_row * T);
  for (int64_t t = 0; t < T; ++t) QuantizeActivationRow(act, x.data() + t * C, a.data() + t * a_row, C);
  std::vector<float> scratch(PromptGemmScratchFloats(C));
  const int64_t ld = n + 2;
  std::vector<float> out(T * ld, -1.0f);
  k.gemm(w.data(), w_stride, n, a.data(), a_row, T, C, out.data(), ld, scratch.data());
  const QDotFn ref = ReferenceQDot(type);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t r = 0; r < n; ++r)
      EXPECT_EQ(out[t * ld + r], ref(w.data() + r * w_stride, a.data() + t * a_row, C)) << what << " t " << t << " r " << r;
    for (int64_t r = n; r < ld; ++r) EXPECT_EQ(out[t * ld + r], -1.0f) << what << ": wrote past n rows";
  }
}

TEST(AmxInt8Gemm, AmxGivesTheRowDotsBits) {
  if (!CpuHasAmxInt8()) GTEST_SKIP() << "no AMX-INT8 on this CPU";
  std::mt19937 rng(5);
  for (DType type : {DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K})
  for (int64_t C : {256, 768})
    for (int64_t n : {1, 13, 16})
      for (int64_t T : {1, 5, 17, 40}) {
        const PromptGemm k = AmxKQuantGemm(type);
        ASSERT_TRUE(k);
        const std::string what = std::string(DTypeName(type)) + " C=" + std::to_string(C) + " n=" + std::to_string(n) + " T=" + std::to_string(T);
        const size_t row = RowBytes(type, C);
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
            } else if (type == DType::kQ2_K) {
              auto* blk = reinterpret_cast<BlockQ2_K*>(w.data() + r * row) + b;
              blk->d = half(), blk->dmin = half();
            } else if (type == DType::kQ3_K) {
              reinterpret_cast<BlockQ3_K*>(w.data() + r * row)[b].d = half();
            } else {
              reinterpret_cast<BlockQ6_K*>(w.data() + r * row)[b].d = half();
            }
          }
        ExpectRowDotBits(k, type, w, row, n, C, T, rng, what);
      }
}

TEST(AmxInt8Gemm, AmxW8A8GivesTheRowDotsBits) {
  const PromptGemm k = AmxW8A8Gemm(DType::kW8A8);
  if (!k) GTEST_SKIP() << "no AMX-INT8 on this CPU";
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int64_t C : {64, 200, 1024})
    for (int64_t n : {1, 13, 16})
      for (int64_t T : {1, 17, 40}) {
        const std::string what = "C=" + std::to_string(C) + " n=" + std::to_string(n) + " T=" + std::to_string(T);
        const size_t w_stride = RowBytes(DType::kW8A8, C) + 3;
        std::vector<uint8_t> w(w_stride * n);
        std::vector<float> src(C);
        for (int64_t r = 0; r < n; ++r) {
          for (float& v : src) v = g(rng) * (1.0f + (float)r);
          Traits(DType::kW8A8).from_float(src.data(), w.data() + r * w_stride, C);
        }
        ExpectRowDotBits(k, DType::kW8A8, w, w_stride, n, C, T, rng, what);
      }
}

// The bitmask rows against per-token int8 activations (sp50_w8a8, sp70_w8a8, and sp70_w4a8 with
// its int4 codes in two tile products) on the w8a8 tiles: the row dot's bits for encoded pruned
// rows and for random rows whose masks set more bits than the capacity (those bits read as
// zeros; sp70_w4a8: every multiplier and nibble), row lengths with an odd number of 32-weight
// blocks (sp70_w4a8: of 256-weight blocks, rows ending in a short chunk of codes).
TEST(AmxInt8Gemm, AmxSparseMaskRowsGiveTheRowDotsBits) {
  std::mt19937 rng(13);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (DType type : {DType::kSP50_W8A8, DType::kSP70_W8A8, DType::kSP70_W4A8}) {
    const PromptGemm k = AmxW8A8Gemm(type);
    if (!k) GTEST_SKIP() << "no AMX-INT8 with AVX-512 VBMI2 on this CPU";
    EXPECT_EQ(FastPromptGemm(type).gemm, k.gemm);
    const bool w4 = type == DType::kSP70_W4A8;
    for (int64_t C : w4 ? std::vector<int64_t>{256, 768, 2816} : std::vector<int64_t>{32, 96, 1024})
      for (int64_t n : {1, 13, 16})
        for (int64_t T : {17, 40}) {
          const std::string what = std::string(DTypeName(type)) + " C=" + std::to_string(C) + " n=" +
                                   std::to_string(n) + " T=" + std::to_string(T);
          const size_t w_stride = RowBytes(type, C) + 3;
          std::vector<uint8_t> w(w_stride * n);
          std::vector<float> src(C);
          for (int64_t r = 0; r < n; ++r) {
            uint8_t* row = w.data() + r * w_stride;
            if (r % 3 == 2) {  // random codes, masks past the capacity
              for (size_t i = 0; i < RowBytes(type, C); ++i) row[i] = (uint8_t)rng();
              const float d = 0.01f * (1.0f + (float)r);
              std::memcpy(row, &d, sizeof d);
              for (int64_t b = 0; b < C / 32; ++b) {
                uint32_t m = 0;
                for (int j = 0; j < 32; ++j) m |= (uint32_t)(u(rng) < 0.8f) << j;
                std::memcpy(row + 4 + 4 * b, &m, sizeof m);
              }
            } else {
              for (float& v : src) v = u(rng) < 0.6f ? 0.0f : g(rng) * (1.0f + (float)r);
              Traits(type).from_float(src.data(), row, C);
            }
          }
          ExpectRowDotBits(k, type, w, w_stride, n, C, T, rng, what);
        }
  }
}

TEST(AmxInt8Gemm, OnlyTheTypesWithAKernelOnAmx) {
  EXPECT_EQ((bool)AmxW8A8Gemm(DType::kW8A8), CpuHasAmxInt8());
  EXPECT_FALSE(AmxW8A8Gemm(DType::kI8_PC));
  EXPECT_FALSE(AmxKQuantGemm(DType::kW8A8));
  if (CpuHasAmxInt8()) {
    EXPECT_EQ(FastPromptGemm(DType::kW8A8).gemm, AmxW8A8Gemm(DType::kW8A8).gemm);
  }
  EXPECT_EQ((bool)AmxKQuantGemm(DType::kQ4_K), CpuHasAmxInt8());
  EXPECT_EQ((bool)AmxKQuantGemm(DType::kQ5_K), CpuHasAmxInt8());
  EXPECT_EQ((bool)AmxKQuantGemm(DType::kQ6_K), CpuHasAmxInt8());
  EXPECT_EQ((bool)AmxKQuantGemm(DType::kQ2_K), CpuHasAmxInt8());
  EXPECT_EQ((bool)AmxKQuantGemm(DType::kQ3_K), CpuHasAmxInt8());
  for (DType t : {DType::kQ4_0, DType::kQ8_K, DType::kF16}) EXPECT_FALSE(AmxKQuantGemm(t));
}

// s24_w4a8 on the tiles, one scale step per 64 columns: the row dot's bits for encoded rows and
// for random rows (every index and code pattern, so two slots may name one column; scales of
// every size), odd row and token counts.
TEST(AmxInt8Gemm, AmxS24W4A8GivesTheRowDotsBits) {
  const PromptGemm k = AmxW8A8Gemm(DType::kS24_W4A8);
  if (!k) GTEST_SKIP() << "no AMX-INT8 with AVX-512 VBMI on this CPU";
  EXPECT_EQ(FastPromptGemm(DType::kS24_W4A8).gemm, k.gemm);
  std::mt19937 rng(17);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int64_t C : {128, 384, 1024})
    for (int64_t n : {1, 13, 16})
      for (int64_t T : {1, 17, 40}) {
        const std::string what = "C=" + std::to_string(C) + " n=" + std::to_string(n) + " T=" + std::to_string(T);
        const size_t row_bytes = RowBytes(DType::kS24_W4A8, C), w_stride = row_bytes + 3;
        std::vector<uint8_t> w(w_stride * n);
        std::vector<float> src(C);
        for (int64_t r = 0; r < n; ++r) {
          uint8_t* row = w.data() + r * w_stride;
          if (r % 3 == 2) {
            for (size_t i = 0; i < row_bytes; ++i) row[i] = (uint8_t)rng();
            for (int64_t b = 0; b < C / kQKS24W4; ++b)
              for (int h = 0; h < 2; ++h) {
                const bf16_t d = FloatToBf16(g(rng) * std::ldexp(1.0f, (int)(rng() % 30) - 15));
                std::memcpy(row + sizeof(RowHeaderS24W4) + b * sizeof(BlockS24W4) + 2 * h, &d, sizeof d);
              }
          } else {
            for (float& v : src) v = g(rng) * (1.0f + (float)r);
            Traits(DType::kS24_W4A8).from_float(src.data(), row, C);
          }
        }
        ExpectRowDotBits(k, DType::kS24_W4A8, w, w_stride, n, C, T, rng, what);
      }
}

}  // namespace
}  // namespace smelt
