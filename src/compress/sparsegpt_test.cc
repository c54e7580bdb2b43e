// SparseGPT against independent references: its naive twin; magnitude pruning when H is the
// identity (no cross-column feedback); the exact quadratic its proxy loss stands for; the layer
// output error of Wanda's and magnitude's masks of the same size on real stories260K inputs;
// exact counts, N:M patterns, zeros that stay zero; joint quantization's grids; bad arguments.
#include "compress/sparsegpt.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "compress/activation_stats.h"
#include "compress/calibration.h"
#include "compress/prune.h"
#include "error_of.h"
#include "formats/types.h"
#include "io/load.h"
#include "calib_layer.h"
#include "shared_assets.h"

namespace smelt {
namespace {

using testing::ErrorOf;

using Layer = testing::CalibLayer;

using testing::MakeCalibLayer;

double Norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += (double)x * x;
  return std::sqrt(s);
}

int64_t Zeros(const std::vector<float>& w) { return std::count(w.begin(), w.end(), 0.0f); }

// Fast (lazy batches, LAPACK, 1 and 3 threads) == naive (whole-row updates, plain loops): the same
// mask and weights within the double sums' rounding, stored as f32: tolerance 1e-6 ‖W‖.
TEST(SparseGpt, FastEqualsNaiveTwin) {
  const Layer l = MakeCalibLayer(48, 256, 600, 1);
  struct Case {
    double s;
    NmPattern p;
    std::optional<DType> q;
  };
  for (const Case& c : {Case{0.5, {}, {}}, Case{0.3, {}, {}}, Case{0, {2, 4}, {}}, Case{0, {4, 8}, {}},
                        Case{0.5, {}, DType::kQ4_0}, Case{0, {2, 4}, DType::kQ8_0}}) {
    SparseGptOptions o;
    o.quantize = c.q;
    const SparseGptResult naive = SparseGptPruneNaive(l.w.data(), l.oc, l.c, l.h.data(), c.s, c.p, o);
    for (int threads : {1, 3}) {
      o.threads = threads;
      const SparseGptResult fast = SparseGptPrune(l.w.data(), l.oc, l.c, l.h.data(), c.s, c.p, o);
      EXPECT_EQ(fast.pruned, naive.pruned);
      double diff = 0;
      int64_t mask_diff = 0;
      for (size_t i = 0; i < fast.w.size(); ++i) {
        diff += std::pow((double)fast.w[i] - naive.w[i], 2);
        mask_diff += (fast.w[i] == 0.0f) != (naive.w[i] == 0.0f);
      }
      EXPECT_EQ(mask_diff, 0) << c.s << " " << c.p.n << ":" << c.p.m << " threads " << threads;
      EXPECT_LE(std::sqrt(diff), 1e-6 * Norm(l.w)) << c.s << " " << c.p.n << ":" << c.p.m;
      EXPECT_NEAR(fast.proxy_loss, naive.proxy_loss, 1e-9 * naive.proxy_loss + 1e-300);
    }
  }
}

// Exactly round(S·OC·C) pruned (in blocks of Bs), every N:M group with exactly M - N zeros, and
// the proxy loss equal to the dampened quadratic of the result.
TEST(SparseGpt, ExactCountsPatternsAndProxyLoss) {
  const Layer l = MakeCalibLayer(20, 192, 400, 2);
  SparseGptOptions o;
  o.block = 64;
  for (double s : {0.1, 0.5, 0.73}) {
    const SparseGptResult r = SparseGptPrune(l.w.data(), l.oc, l.c, l.h.data(), s, {}, o);
    EXPECT_EQ(r.pruned, std::llround(s * (double)(l.oc * l.c))) << s;
    EXPECT_EQ(Zeros(r.w), r.pruned) << s;
    EXPECT_NEAR(r.proxy_loss, testing::DampedQuadratic(l, r.w, r.damp), 1e-6 * r.proxy_loss) << s;
  }
  for (NmPattern p : {NmPattern{2, 4}, NmPattern{4, 8}}) {
    const SparseGptResult r = SparseGptPrune(l.w.data(), l.oc, l.c, l.h.data(), 0, p, o);
    for (int64_t g = 0; g < l.oc * l.c; g += p.m)
      EXPECT_EQ(std::count(r.w.begin() + g, r.w.begin() + g + p.m, 0.0f), p.m - p.n) << g;
  }
}

// With H = I no weight informs another: the saliency is |w| up to a constant, there are no
// updates, and with one block over the whole row the result is plain magnitude pruning.
TEST(SparseGpt, IdentityHessianIsMagnitudePruning) {
  const int64_t OC = 10, C = 64;
  const Layer l = MakeCalibLayer(OC, C, 10, 3);
  std::vector<double> eye((size_t)(C * C), 0.0);
  for (int64_t i = 0; i < C; ++i) eye[(size_t)(i * C + i)] = 1.0;
  SparseGptOptions o;
  o.block = (int)C;
  const SparseGptResult r = SparseGptPrune(l.w.data(), OC, C, eye.data(), 0.6, {}, o);
  const std::vector<uint8_t> mask = SelectMask(PruneScores(l.w.data(), OC, C, nullptr), OC, C, 0.6, false, {});
  for (size_t i = 0; i < l.w.size(); ++i) EXPECT_EQ(r.w[i], mask[i] ? 0.0f : l.w[i]) << i;
}

// Weights that are zero on input and dead input columns stay exactly zero and count as pruned.
TEST(SparseGpt, ZerosAndDeadInputsStayZero) {
  Layer l = MakeCalibLayer(16, 128, 300, 4);
  for (int64_t i = 0; i < l.oc * l.c; i += 5) l.w[(size_t)i] = 0.0f;  // 20 % zero already
  for (int64_t i = 0; i < l.c; ++i) l.h[(size_t)(i * l.c + 7)] = l.h[(size_t)(7 * l.c + i)] = 0.0;  // column 7 dead
  for (auto prune : {SparseGptPrune, SparseGptPruneNaive}) {
    for (double s : {0.1, 0.5}) {
      const SparseGptResult r = prune(l.w.data(), l.oc, l.c, l.h.data(), s, {}, {});
      for (int64_t i = 0; i < l.oc * l.c; ++i)
        if (i % 5 == 0 || i % l.c == 7) {
          EXPECT_EQ(r.w[(size_t)i], 0.0f) << i;
        }
      EXPECT_EQ(Zeros(r.w), r.pruned);
      EXPECT_GE(r.pruned, std::llround(s * (double)(l.oc * l.c)));
    }
    const SparseGptResult nm = prune(l.w.data(), l.oc, l.c, l.h.data(), 0, {2, 4}, {});
    for (int64_t i = 0; i < l.oc * l.c; i += 5) EXPECT_EQ(nm.w[(size_t)i], 0.0f) << i;
  }
}

// Joint pruning and quantization: the encoded tensor decodes to the returned weights bit for
// bit, pruned weights are exact zeros of the grid; a grid with an offset is refused.
TEST(SparseGpt, JointQuantizationWritesItsGridAndKeepsZeros) {
  const Layer l = MakeCalibLayer(12, 128, 300, 5);
  for (DType t : {DType::kQ4_0, DType::kQ8_0, DType::kI4S_G32}) {
    SparseGptOptions o;
    o.quantize = t;
    const SparseGptResult r = SparseGptPrune(l.w.data(), l.oc, l.c, l.h.data(), 0.5, {}, o);
    ASSERT_EQ(r.data.size(), RowBytes(t, l.c) * (size_t)l.oc);
    std::vector<float> dec((size_t)(l.oc * l.c));
    Traits(t).to_float(r.data.data(), dec.data(), l.oc * l.c);
    EXPECT_EQ(dec, r.w) << DTypeName(t);
    EXPECT_GE(Zeros(dec), r.pruned);
  }
  SparseGptOptions o;
  o.quantize = DType::kQ4_1;
  EXPECT_NE(ErrorOf([&] { SparseGptPrune(l.w.data(), l.oc, l.c, l.h.data(), 0.5, {}, o); }).find("exact zero"),
            std::string::npos);
}

// On stories260K's own activations (Hessians from the staged pass over training text), SparseGPT's
// layer output error ‖(W − Ŵ) X‖² is below Wanda's and magnitude's with as many weights pruned,
// unstructured 50 % and 2:4.
TEST(SparseGpt, LowerOutputErrorThanWandaAndMagnitudeOnStories260K) {
  const Model m = LoadModel(assets::kStoriesGguf);
  const auto samples = CalibrationSamples(m, assets::kTrainText, {.samples = 8, .tokens = 128});
  StatsOptions so;
  so.hessian = true;
  const ActivationStats st = CollectActivationStatsStaged(m, samples, so);
  for (const char* name : {"blk.0.attn_q.weight", "blk.2.attn_output.weight", "blk.3.ffn_up.weight",
                           "blk.4.ffn_down.weight"}) {
    const Tensor& t = m.weights.Get(name);
    const InputStats* in = st.Find(name);
    ASSERT_TRUE(in && !in->hessian.empty()) << name;
    const Layer l{t.nrows(), t.ne[0], 0, DequantizeAll(t), {}, in->hessian};
    for (NmPattern p : {NmPattern{}, NmPattern{2, 4}}) {
      const SparseGptResult sg = SparseGptPrune(l.w.data(), l.oc, l.c, l.h.data(), 0.5, p, {});
      auto apply = [&](const InputStats* input) {
        const std::vector<uint8_t> mask =
            SelectMask(PruneScores(l.w.data(), l.oc, l.c, input), l.oc, l.c, 0.5, input != nullptr, p);
        std::vector<float> w = l.w;
        for (size_t i = 0; i < w.size(); ++i)
          if (mask[i]) w[i] = 0.0f;
        return w;
      };
      const std::vector<float> wanda = apply(in), magnitude = apply(nullptr);
      ASSERT_EQ(Zeros(wanda), Zeros(sg.w)) << name;
      ASSERT_EQ(Zeros(magnitude), Zeros(sg.w)) << name;
      const double e_sg = testing::DampedQuadratic(l, sg.w, 0), e_wanda = testing::DampedQuadratic(l, wanda, 0), e_mag = testing::DampedQuadratic(l, magnitude, 0);
      EXPECT_LT(e_sg, e_wanda) << name << " " << p.n << ":" << p.m;
      EXPECT_LT(e_sg, e_mag) << name << " " << p.n << ":" << p.m;
    }
  }
}

TEST(SparseGpt, BadArgumentsNameTheProblem) {
  const Layer l = MakeCalibLayer(4, 32, 50, 6);
  auto run = [&](int64_t C, double s, NmPattern p, SparseGptOptions o) {
    return ErrorOf([&] { SparseGptPrune(l.w.data(), 4, C, l.h.data(), s, p, o); });
  };
  EXPECT_NE(run(32, 1.0, {}, {}).find("outside [0, 1)"), std::string::npos);
  EXPECT_NE(run(32, -0.5, {}, {}).find("outside [0, 1)"), std::string::npos);
  EXPECT_NE(run(32, 0, {2, 2}, {}).find("0 < N < M"), std::string::npos);
  EXPECT_NE(run(32, 0, {2, 3}, {}).find("does not divide"), std::string::npos);
  SparseGptOptions o;
  o.block = 0;
  EXPECT_NE(run(32, 0.5, {}, o).find("block"), std::string::npos);
  o = {};
  o.quantize = DType::kQ4_K;  // 256-value blocks do not divide 32
  EXPECT_NE(run(32, 0.5, {}, o).find("block size"), std::string::npos);
  std::vector<float> w = l.w;
  w[9] = NAN;
  EXPECT_NE(ErrorOf([&] { SparseGptPrune(w.data(), 4, 32, l.h.data(), 0.5, {}, {}); }).find("not finite"),
            std::string::npos);
}

}  // namespace
}  // namespace smelt
