// AdamW against its formula written out per scalar, the learning-rate schedule's values, and
// gradient clipping.
#include "train/optim.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <random>

namespace smelt::train {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

TEST(TrainOptim, AdamWFollowsTheScalarFormula) {
  // Two slices: a matrix (decayed) and a norm (not decayed).
  std::vector<ParamSlice> slices(2);
  slices[0].name = "blk.0.attn_q.weight", slices[0].n_dims = 2, slices[0].offset = 0, slices[0].size = 6, slices[0].decay = true;
  slices[1].name = "blk.0.attn_norm.weight", slices[1].n_dims = 1, slices[1].offset = 6, slices[1].size = 3;
  const size_t n = 9;
  AdamWOptions o;
  o.beta1 = 0.8f, o.beta2 = 0.9f, o.eps = 1e-6f, o.weight_decay = 0.5f;
  AdamW adam(n, o);
  std::mt19937 gen(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> w(n), g(n);
  for (float& x : w) x = d(gen);
  std::vector<double> rw(w.begin(), w.end()), rm(n, 0.0), rv(n, 0.0);
  const float lrs[] = {0.1f, 0.05f, 0.2f};
  for (int t = 1; t <= 3; ++t) {
    for (float& x : g) x = d(gen);
    adam.Step(w, g, slices, lrs[t - 1], 2);
    for (size_t i = 0; i < n; ++i) {
      rm[i] = o.beta1 * rm[i] + (1 - o.beta1) * g[i];
      rv[i] = o.beta2 * rv[i] + (1 - o.beta2) * (double)g[i] * g[i];
      const double mhat = rm[i] / (1 - std::pow((double)o.beta1, t)), vhat = rv[i] / (1 - std::pow((double)o.beta2, t));
      const double wd = i < 6 ? o.weight_decay : 0.0;
      rw[i] -= lrs[t - 1] * (mhat / (std::sqrt(vhat) + o.eps) + wd * rw[i]);
    }
    // fp32 rounding of a handful of operations per step, on values of size |w| and lr·|update|.
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(w[i], rw[i], 32 * t * kEps * (std::fabs(rw[i]) + 1.0)) << t << " " << i;
  }
  EXPECT_EQ(adam.step(), 3);
  // The undecayed slice with zero gradient stays put; the decayed one shrinks by lr·wd·w.
  AdamW fresh(n, o);
  std::vector<float> w2(n, 2.0f), zero(n, 0.0f);
  fresh.Step(w2, zero, slices, 0.1f, 1);
  EXPECT_FLOAT_EQ(w2[0], 2.0f - 0.1f * 0.5f * 2.0f);
  EXPECT_EQ(w2[7], 2.0f);
}

TEST(TrainOptim, WarmupThenCosineSchedule) {
  const LrSchedule s{1e-3f, 10, 110, 0.1f};
  EXPECT_FLOAT_EQ(s.At(0), 1e-4f);
  EXPECT_FLOAT_EQ(s.At(4), 5e-4f);
  EXPECT_FLOAT_EQ(s.At(9), 1e-3f);
  EXPECT_FLOAT_EQ(s.At(10), 1e-3f);                       // cosine starts at the peak
  EXPECT_FLOAT_EQ(s.At(60), 0.5f * (1e-3f + 1e-4f));      // half way: the mean of peak and floor
  EXPECT_FLOAT_EQ(s.At(35), (float)(1e-4 + 0.9e-3 * 0.5 * (1 + std::cos(std::numbers::pi * 0.25))));
  EXPECT_FLOAT_EQ(s.At(110), 1e-4f);
  EXPECT_FLOAT_EQ(s.At(500), 1e-4f);  // past the end: the floor
  for (int64_t i = 10; i < 110; ++i) EXPECT_LE(s.At(i + 1), s.At(i)) << i;
  const LrSchedule none{2e-3f, 0, 1, 1.0f};  // no warmup, floor = peak: constant
  EXPECT_FLOAT_EQ(none.At(0), 2e-3f);
}

TEST(TrainOptim, GlobalNormClipping) {
  std::vector<float> g = {3.0f, 0.0f, -4.0f, 12.0f};  // norm 13
  std::vector<float> copy = g;
  EXPECT_DOUBLE_EQ(ClipGradNorm(copy, 20.0f), 13.0);
  EXPECT_EQ(copy, g);  // under the limit: untouched
  EXPECT_DOUBLE_EQ(ClipGradNorm(copy, 0.0f), 13.0);
  EXPECT_EQ(copy, g);  // 0: no clipping
  EXPECT_DOUBLE_EQ(ClipGradNorm(copy, 1.3f), 13.0);
  double ss = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    EXPECT_NEAR(copy[i], g[i] * 0.1f, 2 * kEps * std::fabs(g[i]));  // same direction
    ss += (double)copy[i] * copy[i];
  }
  EXPECT_NEAR(std::sqrt(ss), 1.3, 4 * kEps * 1.3);
}

}  // namespace
}  // namespace smelt::train
