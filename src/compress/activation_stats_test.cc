// The staged, layer-by-layer statistics pass (model/llama_staged.h) against the reference pass
// (the runtime's forward pass with an observer): the same Σx², Σ|x|, max|x| and Hessians for
// every projection input on stories260K (GQA, real weights) and on tiny models with Q/K/V biases
// and a tied head; and a group hook that replaces tensors is honoured from the next stage on,
// checked against the reference pass run on a model with those tensors replaced up front.
#include "compress/activation_stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <string>

#include "compress/calibration.h"
#include "compress/quantize.h"
#include "compress/structured.h"
#include "io/load.h"
#include "shared_assets.h"
#include "tiny_models.h"

namespace smelt {
namespace {

double Norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

// |a - b| within rel · ‖b‖ for every element of every statistic (f32 GEMMs in a different
// summation order than the reference's dot products; rel is a few f32 ulps times depth).
void ExpectSameStats(const ActivationStats& got, const ActivationStats& want, double rel) {
  ASSERT_EQ(got.tokens, want.tokens);
  std::set<std::string> names;
  for (const auto& [name, s] : want.by_weight) names.insert(name);
  for (const auto& [name, s] : got.by_weight) EXPECT_TRUE(names.count(name)) << name;
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const InputStats* g = got.Find(name);
    const InputStats* w = want.Find(name);
    ASSERT_NE(g, nullptr);
    ASSERT_EQ(g->columns, w->columns);
    EXPECT_EQ(g->rows, w->rows);
    const double sq = Norm(w->sum_sq), ab = Norm(w->sum_abs), h = Norm(w->hessian);
    ASSERT_EQ(g->hessian.size(), w->hessian.size());
    for (int64_t c = 0; c < w->columns; ++c) {
      EXPECT_NEAR(g->sum_sq[c], w->sum_sq[c], rel * sq) << c;
      EXPECT_NEAR(g->sum_abs[c], w->sum_abs[c], rel * ab) << c;
      EXPECT_NEAR(g->max_abs[c], w->max_abs[c], rel * (w->max_abs[c] + 1e-3)) << c;
    }
    for (size_t i = 0; i < w->hessian.size(); ++i) EXPECT_NEAR(g->hessian[i], w->hessian[i], rel * h) << i;
  }
}

std::vector<std::vector<int32_t>> RandomSamples(int n, int len, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(1, vocab - 1);
  std::vector<std::vector<int32_t>> samples(n);
  for (int i = 0; i < n; ++i) {
    samples[i].resize(len - i % 3);  // unequal lengths
    for (int32_t& t : samples[i]) t = tok(rng);
  }
  return samples;
}

TEST(CompressStagedStats, MatchReferenceOnStories260K) {
  const Model m = LoadModel(assets::kStoriesGguf);
  const auto samples = CalibrationSamples(m, assets::kTrainText, {.samples = 4, .tokens = 96});
  StatsOptions so;
  so.hessian = true;
  so.threads = 2;
  const ActivationStats want = CollectActivationStats(m, samples, so);
  const ActivationStats got = CollectActivationStatsStaged(m, samples, so);
  ExpectSameStats(got, want, 1e-4);
  // Every projection of every block and the head has its statistics (wq/wk/wv share one entry).
  EXPECT_EQ(got.by_weight.size(), 7u * (size_t)m.config.n_layers + 1);
  EXPECT_EQ(got.Find("blk.2.attn_q.weight"), got.Find("blk.2.attn_v.weight"));
}

TEST(CompressStagedStats, MatchReferenceWithBiasesAndTiedHead) {
  for (bool qwen2 : {false, true}) {
    SCOPED_TRACE(qwen2 ? "qwen2" : "llama");
    const Model m = tiny::TinyLlama({.layers = 3, .qwen2 = qwen2, .tied = true, .seed = 5});
    const auto samples = RandomSamples(5, 19, m.config.vocab, 7);
    StatsOptions so;
    so.hessian = true;
    so.threads = 2;  // two workers, their sums merged
    ExpectSameStats(CollectActivationStatsStaged(m, samples, so), CollectActivationStats(m, samples, so), 1e-4);
  }
}

// Blocks with different feed-forward sizes (global channel pruning): each block's down projection
// sees its own width in both passes.
TEST(CompressStagedStats, MatchReferenceWithPerBlockFeedForwardSizes) {
  const Model full = tiny::TinyLlama({.layers = 3, .ff = 24, .seed = 9});
  const Model m = RemoveUnits(full, StructuredTarget::kChannels, {{1, 2, 3, 4, 5, 6, 7, 8}, {}, {0, 23}});
  ASSERT_EQ(m.config.layer_ff, (std::vector<int>{16, 24, 22}));
  const auto samples = RandomSamples(4, 17, m.config.vocab, 3);
  StatsOptions so;
  so.hessian = true;
  so.threads = 2;
  const ActivationStats got = CollectActivationStatsStaged(m, samples, so);
  ExpectSameStats(got, CollectActivationStats(m, samples, so), 1e-4);
  EXPECT_EQ(got.Find("blk.0.ffn_down.weight")->columns, 16);
  EXPECT_EQ(got.Find("blk.2.ffn_down.weight")->columns, 22);
}

// A hook that quantizes each group as it completes: the statistics of every later group are those
// of the model whose earlier groups were quantized before the pass (the reference pass on a model
// quantized up to that point), and the hook sees complete statistics for its group.
TEST(CompressStagedStats, HookReplacementsFeedTheLaterStages) {
  Model work = tiny::TinyLlama({.layers = 2, .seed = 13});
  const Model original = work;
  const auto samples = RandomSamples(3, 17, work.config.vocab, 11);
  StatsOptions so;
  so.hessian = true;
  int64_t tokens = 0;
  for (const auto& s : samples) tokens += (int64_t)s.size();
  std::vector<std::string> order;
  const ActivationStats got =
      CollectActivationStatsStaged(work, samples, so, [&](int, std::span<const std::string> weights,
                                                          const ActivationStats& stats) {
        for (const std::string& w : weights) {
          ASSERT_NE(stats.Find(w), nullptr);
          EXPECT_EQ(stats.Find(w)->rows, tokens);  // every sample's input is in before the hook
          work.weights.Set(EncodeTensor(work.weights.Get(w), DType::kQ4_0, nullptr, 1));
          order.push_back(w);
        }
      });
  // The hook quantized every matrix the pass reads (the head included), in forward order.
  ASSERT_EQ(order.size(), 7u * 2 + 1);
  EXPECT_EQ(order.front(), "blk.0.attn_q.weight");
  EXPECT_EQ(order.back(), "output.weight");
  // Reference: for the k-th group, the statistics of its input on the original model with groups
  // 0..k-1 already quantized.
  for (size_t k = 0; k < order.size(); ++k) {
    Model partial = original;
    for (size_t j = 0; j < k; ++j)
      partial.weights.Set(EncodeTensor(original.weights.Get(order[j]), DType::kQ4_0, nullptr, 1));
    const ActivationStats want = CollectActivationStats(partial, samples, so);
    const InputStats* g = got.Find(order[k]);
    const InputStats* w = want.Find(order[k]);
    ASSERT_TRUE(g && w) << order[k];
    const double h = Norm(w->hessian);
    for (size_t i = 0; i < w->hessian.size(); ++i) ASSERT_NEAR(g->hessian[i], w->hessian[i], 1e-4 * h) << order[k];
  }
  // And the quantization did change what later groups see (the check above can fail).
  const ActivationStats plain = CollectActivationStats(original, samples, so);
  const InputStats* a = plain.Find("blk.1.ffn_down.weight");
  const InputStats* b = got.Find("blk.1.ffn_down.weight");
  double diff = 0;
  for (size_t i = 0; i < a->hessian.size(); ++i) diff = std::max(diff, std::abs(a->hessian[i] - b->hessian[i]));
  EXPECT_GT(diff, 1e-3 * Norm(a->hessian));
}

TEST(CompressStagedStats, DropsHessiansAfterTheHookWhenAsked) {
  const Model m = tiny::TinyLlama({.seed = 3});
  StatsOptions so;
  so.hessian = true;
  so.keep_hessians = false;
  size_t seen = 0;
  const ActivationStats got =
      CollectActivationStatsStaged(m, RandomSamples(2, 9, m.config.vocab, 1), so,
                                   [&](int, std::span<const std::string> weights, const ActivationStats& stats) {
                                     const InputStats* s = stats.Find(weights[0]);
                                     EXPECT_EQ(s->hessian.size(), (size_t)(s->columns * s->columns));
                                     ++seen;
                                   });
  EXPECT_EQ(seen, 4u * 2 + 1);
  for (const auto& [name, s] : got.by_weight) {
    EXPECT_TRUE(s->hessian.empty()) << name;
    EXPECT_GT(s->rows, 0) << name;
  }
}

}  // namespace
}  // namespace smelt
