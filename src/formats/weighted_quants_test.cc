// The importance-weighted MSE quantizers against the formats' reference (round-to-nearest)
// quantizers, on the same rows: the properties that justify them, measured, not assumed.
#include "formats/weighted_quants.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "formats/format_test_util.h"
#include "formats/types.h"

namespace smelt {
namespace {

const DType kWeighted[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kIQ4_NL,
                           DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
const DType kKQuants[] = {DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

std::vector<float> Decode(DType t, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> y(n);
  Traits(t).to_float(bytes.data(), y.data(), n);
  return y;
}

std::vector<float> EncodeWeighted(DType t, const std::vector<float>& x, const std::vector<float>& w) {
  std::vector<uint8_t> b(RowBytes(t, (int64_t)x.size()));
  Traits(t).from_float_weighted(x.data(), w.data(), b.data(), (int64_t)x.size());
  return Decode(t, b, (int64_t)x.size());
}

double WeightedError(const std::vector<float>& x, const std::vector<float>& y, const std::vector<float>& w) {
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += w[i] * ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
  return s;
}

// With unit importances the search minimises plain squared error, so it does no worse than the
// reference quantizer's scale (one of its candidates) on any kind of row, up to the fp16
// rounding of the chosen scale, and clearly better on bell-shaped rows.
TEST(FormatsWeighted, MseSearchBeatsRoundToNearest) {
  const int n = 4096;
  const std::vector<float> ones(n, 1.0f);
  for (DType t : kWeighted) {
    for (testing::RowKind kind : testing::kAllRowKinds) {
      const auto x = testing::MakeRow(kind, n, 11);
      const double ref = WeightedError(x, testing::RoundTrip(t, x), ones);
      const double mse = WeightedError(x, EncodeWeighted(t, x, ones), ones);
      double scale2 = 0;
      for (float v : x) scale2 += testing::Fp16RoundingBound(v) * testing::Fp16RoundingBound(v);
      EXPECT_LE(mse, ref * 1.001 + 4 * scale2) << DTypeName(t) << " " << testing::RowKindName(kind);
      if (kind == testing::RowKind::kGaussian) {
        EXPECT_LT(mse, 0.97 * ref) << DTypeName(t);
      }
    }
  }
}

// Importances steer the error: weighting a subset of columns heavily lowers the weighted error
// below what the importance-blind search reaches.
TEST(FormatsWeighted, ImportanceLowersTheWeightedError) {
  const int n = 8192;
  std::mt19937 rng(5);
  std::vector<float> w(n);
  for (int i = 0; i < n; ++i) w[i] = (rng() % 8 == 0) ? 50.0f : 0.5f + (float)(rng() % 100) / 100.0f;
  const std::vector<float> ones(n, 1.0f);
  for (DType t : kWeighted) {
    const auto x = testing::MakeRow(testing::RowKind::kGaussian, n, 12);
    const double blind = WeightedError(x, EncodeWeighted(t, x, ones), w);
    const double aware = WeightedError(x, EncodeWeighted(t, x, w), w);
    EXPECT_LT(aware, 0.95 * blind) << DTypeName(t);
  }
}

// The k-quant encoders against the reference encoders (ggml's bytes) under random importances
// spanning orders of magnitude: never a larger weighted error on any row (the reference is their
// fallback per super-block), a clearly smaller one in aggregate and on nearly every row.
TEST(FormatsWeighted, KQuantsBeatReferenceUnderRandomImportances) {
  const int n = 1024, rows = 40;
  std::mt19937 rng(21);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  for (DType t : kKQuants) {
    double sum_w = 0, sum_ref = 0;
    int better = 0;
    for (int r = 0; r < rows; ++r) {
      const auto x = testing::MakeRow(r % 2 ? testing::RowKind::kOutliers : testing::RowKind::kGaussian, n, 300 + r);
      std::vector<float> w(n);
      for (float& v : w) v = std::exp(1.5f * gauss(rng));
      const double ref = WeightedError(x, testing::RoundTrip(t, x), w);
      const double mse = WeightedError(x, EncodeWeighted(t, x, w), w);
      EXPECT_LE(mse, ref * (1 + 1e-12)) << DTypeName(t) << " row " << r;
      sum_w += mse, sum_ref += ref, better += mse < ref;
    }
    EXPECT_LT(sum_w, 0.95 * sum_ref) << DTypeName(t);
    EXPECT_GE(better, rows * 9 / 10) << DTypeName(t);
  }
}

// The k-quant encoders on the awkward row kinds (zeros, constants, one-signed, tiny values whose
// scales are fp16 subnormals, huge values) under uneven importances: the type's decoder gives
// finite values, and the weighted error is no larger than the reference encoding's.
TEST(FormatsWeighted, KQuantsHandleEveryRowKind) {
  const int n = 2048;
  std::vector<float> w(n);
  std::mt19937 rng(4);
  for (float& v : w) v = (float)(rng() % 1000) / 100.0f;
  for (DType t : kKQuants) {
    for (testing::RowKind kind : testing::kAllRowKinds) {
      const auto x = testing::MakeRow(kind, n, 17);
      const auto y = EncodeWeighted(t, x, w);
      for (float v : y) ASSERT_TRUE(std::isfinite(v)) << DTypeName(t) << " " << testing::RowKindName(kind);
      EXPECT_LE(WeightedError(x, y, w), WeightedError(x, testing::RoundTrip(t, x), w) * (1 + 1e-12))
          << DTypeName(t) << " " << testing::RowKindName(kind);
    }
  }
}

// A block whose importances are all zero is quantized as if they were all one (not to zeros).
TEST(FormatsWeighted, ZeroImportanceBlocksAreTreatedAsUniform) {
  const int n = 256;
  const auto x = testing::MakeRow(testing::RowKind::kGaussian, n, 13);
  const std::vector<float> zeros(n, 0.0f), ones(n, 1.0f);
  for (DType t : kWeighted) EXPECT_EQ(EncodeWeighted(t, x, zeros), EncodeWeighted(t, x, ones)) << DTypeName(t);
}

}  // namespace
}  // namespace smelt
