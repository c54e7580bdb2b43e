// MatMul on weights of every kind of type against "dequantize the whole tensor, then a naive
// double-precision dot"; batching and threading must not change a single bit.
#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "formats/activation.h"
#include "formats/types.h"
#include "kernels/qdot.h"
#include "kernels/qdot_test_util.h"
#include "tiny_models.h"

namespace smelt {
namespace {

// y (T, OC) from the fully dequantized weights, in double.
std::vector<double> NaiveProduct(const Tensor& w, const std::vector<float>& x, int64_t T) {
  const std::vector<float> dense = DequantizeAll(w);
  const int64_t C = w.ne[0], OC = w.ne[1];
  std::vector<double> y(T * OC);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < OC; ++o) {
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += (double)dense[o * C + c] * x[t * C + c];
      y[t * OC + o] = s;
    }
  return y;
}

// Q4_1/Q5_1 under kGgml, where MatMul runs the quantized kernels, multiply each block minimum by
// the Q8_1 block's stored s, not by the sum of the rounded activations (kernels/qdot.h): add that
// difference to the naive product.
void AddMinTermCorrection(const Tensor& w, const std::vector<float>& x, const std::vector<float>& rounded, int64_t T,
                          std::vector<double>& y) {
  const DType act = ActivationType(w.type);
  if (act != DType::kQ8_1 || !FastQDot(w.type)) return;
  const int64_t C = w.ne[0], OC = w.ne[1];
  std::vector<uint8_t> encoded(RowBytes(act, C));
  for (int64_t t = 0; t < T; ++t) {
    QuantizeActivationRow(act, x.data() + t * C, encoded.data(), C);
    for (int64_t o = 0; o < OC; ++o) {
      const auto* row = static_cast<const uint8_t*>(w.data) + o * RowBytes(w.type, C);
      y[t * OC + o] += testing::MinTermCorrection(w.type, row, encoded.data(), rounded.data() + t * C, C);
    }
  }
}

class KernelMatMulTypes : public ::testing::TestWithParam<DType> {};

TEST_P(KernelMatMulTypes, MatchesDequantizeThenDot) {
  const DType type = GetParam();
  const int64_t C = 512, OC = 37, T = 5;  // OC not a multiple of the row block
  const Tensor f32 = MakeF32Tensor("w", {C, OC}, tiny::RandomVector(C * OC, 1));
  const Tensor w = type == DType::kF32 ? f32 : tiny::EncodeTensor(f32, type);
  const std::vector<float> x = tiny::RandomVector(T * C, 2);
  // The activations each mode should multiply by: as given, and rounded row by row to the
  // weight's activation type (formats/activation.h, checked against ggml there).
  std::vector<float> rounded(T * C);
  for (int64_t t = 0; t < T; ++t) RoundActivationRow(type, x.data() + t * C, rounded.data() + t * C, C);
  for (Activations act : {Activations::kExact, Activations::kGgml}) {
    std::vector<float> y(T * OC), single(T * OC);
    MatMul(w, x.data(), T, y.data(), 1, act);  // the batched (transposed block) path
    for (int64_t t = 0; t < T; ++t) MatVec(w, x.data() + t * C, single.data() + t * OC, 1, act);  // row dots
    std::vector<double> want = NaiveProduct(w, act == Activations::kExact ? x : rounded, T);
    if (act == Activations::kGgml) AddMinTermCorrection(w, x, rounded, T, want);
    double max_err = 0, max_err_single = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      max_err = std::max(max_err, std::abs(y[i] - want[i]));
      max_err_single = std::max(max_err_single, std::abs(single[i] - want[i]));
    }
    // f32 accumulation over C = 512 terms of size ~1: rounding stays far below 1e-3.
    EXPECT_LT(max_err, 1e-3) << DTypeName(type) << (int)act;
    EXPECT_LT(max_err_single, 1e-3) << DTypeName(type) << (int)act;
  }
}

INSTANTIATE_TEST_SUITE_P(KernelMatMul, KernelMatMulTypes,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                                           DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                                           DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kIQ4_NL),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(KernelMatMul, BatchNearRowByRowAndThreadsDoNotChangeBits) {
  const int64_t C = 256, OC = 300, T = 6;  // C·OC above the single-thread threshold
  const Tensor w = tiny::EncodeTensor(MakeF32Tensor("w", {C, OC}, tiny::RandomVector(C * OC, 3)), DType::kQ8_0);
  const std::vector<float> x = tiny::RandomVector(T * C, 4);
  std::vector<float> batch(T * OC), batch2(T * OC), single(OC), single2(OC);
  MatMul(w, x.data(), T, batch.data(), 1);
  MatMul(w, x.data(), T, batch2.data(), 2);
  EXPECT_EQ(batch, batch2);
  for (int64_t t = 0; t < T; ++t) {
    MatVec(w, x.data() + t * C, single.data(), 1);
    MatVec(w, x.data() + t * C, single2.data(), 2);
    EXPECT_EQ(single, single2);
    for (int64_t o = 0; o < OC; ++o) EXPECT_NEAR(single[o], batch[t * OC + o], 1e-4);
  }
}

// Up to 16 tokens (kMinBlockedBatch) a batch gives every token the bits of its one-token product,
// whichever kernel runs it: the row dots, or from PromptGemm::from_tokens a blocked kernel with
// their bits (the AMX tiles of w8a8 and its sparse rows).
TEST(KernelMatMul, BatchesUpTo16TokensGiveEachTokenItsOneTokenBits) {
  const int64_t C = 512, OC = 40;
  const Tensor f32 = MakeF32Tensor("w", {C, OC}, tiny::RandomVector(C * OC, 5));
  const std::vector<float> x = tiny::RandomVector(16 * C, 6);
  for (DType type : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K, DType::kW8A8, DType::kSP50_W8A8,
                     DType::kSP70_W8A8, DType::kS24_W4A8, DType::kSP70_W4A8}) {
    const Tensor w = tiny::EncodeTensor(f32, type);
    const int64_t from = FastPromptGemm(type).from_tokens;
    ASSERT_LT(from, kMinBlockedBatch) << DTypeName(type);
    for (int64_t T : {int64_t{2}, from - 1, from, from + 1, kMinBlockedBatch - 1}) {
      if (T < 2) continue;
      std::vector<float> batch(T * OC), one(OC);
      MatMul(w, x.data(), T, batch.data(), 1);
      for (int64_t t = 0; t < T; ++t) {
        MatMul(w, x.data() + t * C, 1, one.data(), 1);
        EXPECT_EQ(one, std::vector<float>(batch.begin() + t * OC, batch.begin() + (t + 1) * OC))
            << DTypeName(type) << " T " << T << " token " << t;
      }
    }
  }
}

TEST(KernelMatMul, ReadRowF32MatchesDequantizeAll) {
  const Tensor w = tiny::EncodeTensor(MakeF32Tensor("w", {64, 3}, tiny::RandomVector(192, 5)), DType::kQ4_0);
  const std::vector<float> dense = DequantizeAll(w);
  std::vector<float> row(64);
  for (int r = 0; r < 3; ++r) {
    ReadRowF32(w, r, row.data());
    EXPECT_TRUE(std::equal(row.begin(), row.end(), dense.begin() + r * 64));
  }
}

TEST(KernelMatMul, CheckReadableRejectsBadTensors) {
  Tensor ok = MakeF32Tensor("blk.0.attn_q.weight", {8, 2}, std::vector<float>(16));
  EXPECT_NO_THROW(CheckReadable(ok, "m.gguf"));

  Tensor ints = ok;
  ints.type = DType::kI32;
  EXPECT_THROW(CheckReadable(ints, "m.gguf"), Error);

  Tensor odd = ok;  // 8 values per row is not a whole Q8_0 block (32)
  odd.type = DType::kQ8_0;
  try {
    CheckReadable(odd, "m.gguf");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.gguf: tensor blk.0.attn_q.weight"), std::string::npos) << e.what();
  }

  Tensor short_data = ok;
  short_data.nbytes = 60;
  EXPECT_THROW(CheckReadable(short_data, "m.gguf"), Error);
}

}  // namespace
}  // namespace smelt
