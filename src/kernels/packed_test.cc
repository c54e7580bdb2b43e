// Packed Q4_0 weights (kernels/packed.h): packing is lossless, the AVX2 kernel is its scalar
// reference bit for bit, the reference is the decoded dot product up to f32 rounding (bound from
// the terms' magnitudes), and MatMulPacked agrees with MatMul on the unpacked tensor, for any
// batch size, thread count and a row count that leaves a padded panel.
#include "kernels/packed.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "formats/activation.h"
#include "formats/q4_0.h"
#include "formats/q8_0.h"
#include "formats/types.h"
#include "kernels/matmul.h"
#include "qdot_test_util.h"

namespace smelt {
namespace {

struct Q4Matrix {
  std::vector<BlockQ4_0> blocks;
  Tensor tensor;
};

// rows × cols Q4_0 weights with random codes; block scales from `scale` (one per block, cycling).
Q4Matrix RandomQ4(int64_t rows, int64_t cols, uint32_t seed, std::vector<float> scales) {
  std::mt19937 rng(seed);
  Q4Matrix m;
  m.blocks.resize(rows * cols / 32);
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    m.blocks[i].d = FloatToFp16(scales[i % scales.size()] * (rng() % 2 ? 1.0f : -1.0f));
    for (uint8_t& q : m.blocks[i].qs) q = (uint8_t)(rng() & 0xFF);
  }
  m.tensor.name = std::string("packed.weight");
  m.tensor.type = DType::kQ4_0;
  m.tensor.n_dims = 2;
  m.tensor.ne = {cols, rows, 1, 1};
  m.tensor.data = m.blocks.data();
  m.tensor.nbytes = m.blocks.size() * sizeof(BlockQ4_0);
  return m;
}

std::vector<float> RandomActivations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  for (int64_t i = 0; i < n; i += 97) x[i] *= 50.0f;  // outliers: codes at ±127 in their blocks
  return x;
}

// Q8_0 rows of x (T, C) and their blocks' code sums, as MatMulPacked makes them.
struct Encoded {
  std::vector<uint8_t> bytes;
  std::vector<int32_t> sums;
  size_t stride;
};
Encoded Encode(const std::vector<float>& x, int64_t T, int64_t C) {
  Encoded e;
  e.stride = RowBytes(DType::kQ8_0, C);
  e.bytes.resize(e.stride * T);
  for (int64_t t = 0; t < T; ++t) {
    QuantizeActivationRow(DType::kQ8_0, x.data() + t * C, e.bytes.data() + t * e.stride, C);
    const auto* b = reinterpret_cast<const BlockQ8_0*>(e.bytes.data() + t * e.stride);
    for (int64_t k = 0; k < C / 32; ++k) {
      int32_t s = 0;
      for (int8_t q : b[k].qs) s += q;
      e.sums.push_back(s);
    }
  }
  return e;
}

const std::vector<std::vector<float>> kScaleSets = {
    {0.01f, 0.02f, 0.005f},       // ordinary
    {0.0f, 1.0f, 0.0f},           // zero blocks
    {60000.0f, 3e-7f, 1.0f},      // huge and subnormal fp16 scales side by side
};

TEST(Packed, PackingIsLosslessAndPadsTheLastPanel) {
  const Q4Matrix m = RandomQ4(13, 96, 1, kScaleSets[0]);
  ASSERT_TRUE(CanPack(m.tensor));
  const PackedMatrix p = PackWeights(m.tensor);
  EXPECT_EQ(p.panels(), 2);
  std::vector<BlockQ4_0> row(3);
  for (int64_t r = 0; r < 13; ++r) {
    UnpackRow(p, r, row.data());
    EXPECT_EQ(std::memcmp(row.data(), &m.blocks[r * 3], sizeof(BlockQ4_0) * 3), 0) << "row " << r;
  }
  for (int64_t lane = 13 % kPackRows; lane < kPackRows; ++lane)  // padding rows: zero scale
    for (int64_t b = 0; b < 3; ++b) EXPECT_EQ(p.panel(1)[b].d[lane], 0);
  Tensor f16 = m.tensor;
  f16.type = DType::kF16;
  EXPECT_FALSE(CanPack(f16));
}

TEST(Packed, ReferenceIsTheDecodedDotAndAvx2IsTheReferenceBitForBit) {
  const PackedGemmFn avx2 = FastPackedGemm();
  for (size_t set = 0; set < kScaleSets.size(); ++set) {
    const int64_t C = 256, T = 9;
    const Q4Matrix m = RandomQ4(8, C, 10 + set, kScaleSets[set]);
    const PackedMatrix p = PackWeights(m.tensor);
    const std::vector<float> x = RandomActivations(T * C, 20 + set);
    const Encoded e = Encode(x, T, C);
    std::vector<float> ref(T * 8), fast(T * 8);
    PackedGemmReference(p.panel(0), C / 32, e.bytes.data(), e.stride, e.sums.data(), T, ref.data(), 8);
    // Against the decoded values: the exact sum in double, within the rounding of its terms.
    std::vector<float> w(C), a(C);
    for (int64_t t = 0; t < T; ++t) {
      Traits(DType::kQ8_0).to_float(e.bytes.data() + t * e.stride, a.data(), C);
      for (int r = 0; r < 8; ++r) {
        Traits(DType::kQ4_0).to_float(&m.blocks[r * C / 32], w.data(), C);
        const double exact = testing::DotDouble(w.data(), a.data(), C);
        const double mass = testing::DotMass(DType::kQ4_0, reinterpret_cast<const uint8_t*>(&m.blocks[r * C / 32]),
                                             e.bytes.data() + t * e.stride, w.data(), a.data(), C);
        EXPECT_NEAR(ref[t * 8 + r], exact, testing::KernelTolerance(C, mass)) << "set " << set << " t " << t;
      }
    }
    if (!avx2) continue;
    // Every batch size, so each token-tile path runs.
    for (int64_t n : {1, 3, 4, 5, 9}) {
      std::fill(fast.begin(), fast.end(), 0.0f);
      avx2(p.panel(0), C / 32, e.bytes.data(), e.stride, e.sums.data(), n, fast.data(), 8);
      for (int64_t i = 0; i < n * 8; ++i) ASSERT_EQ(fast[i], ref[i]) << "set " << set << " T " << n << " i " << i;
    }
  }
  if (!avx2) GTEST_SKIP() << "no AVX2 on this CPU: only the reference was checked";
}

TEST(Packed, MatMulPackedAgreesWithMatMulAtAnyBatchAndThreadCount) {
  if (!FastPackedGemm()) GTEST_SKIP() << "no packed kernel on this CPU";
  const int64_t OC = 45, C = 512, T = 7;  // 45 rows: the sixth panel is padded
  const Q4Matrix m = RandomQ4(OC, C, 3, kScaleSets[0]);
  const PackedMatrix p = PackWeights(m.tensor);
  const std::vector<float> x = RandomActivations(T * C, 4);
  std::vector<float> want(T * OC), got(T * OC), two(T * OC), one(OC);
  MatMul(m.tensor, x.data(), T, want.data(), 1, Activations::kGgml);
  MatMulPacked(p, x.data(), T, got.data(), 1);
  MatMulPacked(p, x.data(), T, two.data(), 2);
  EXPECT_EQ(got, two);
  double max_rel = 0;
  for (int64_t i = 0; i < T * OC; ++i) {
    max_rel = std::max(max_rel, std::fabs((double)got[i] - want[i]) / (std::fabs((double)want[i]) + 1e-3));
  }
  EXPECT_LT(max_rel, 1e-4);
  // A token's outputs are the same bits alone as in the batch.
  for (int64_t t = 0; t < T; ++t) {
    MatMulPacked(p, x.data() + t * C, 1, one.data(), 1);
    EXPECT_EQ(one, std::vector<float>(got.begin() + t * OC, got.begin() + (t + 1) * OC)) << "token " << t;
  }
}

}  // namespace
}  // namespace smelt
