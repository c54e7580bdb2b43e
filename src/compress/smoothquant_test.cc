// SmoothQuant: the scale balances each channel's activation and weight ranges, folding keeps the
// f32 model's function and the returned statistics are those of the smoothed model, and — the
// paper's claim — with activation outlier channels W8A8 (per-token int8 activations) loses far
// less after smoothing than without.
#include "compress/smoothquant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "compress/calibration.h"
#include "compress/quantize.h"
#include "compress/rules.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "eval/kld.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "model/model.h"
#include "runtime/session.h"
#include "shared_assets.h"

namespace smelt {
namespace {

using assets::kStoriesGguf;
using assets::kTrainText;
using assets::kDevText;

TEST(CompressSmoothQuant, ScaleBalancesActivationAndWeightRanges) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  std::vector<float> act(50), wmax(50);
  for (size_t c = 0; c < act.size(); ++c) act[c] = std::exp(u(rng)), wmax[c] = std::exp(u(rng) / 4);
  act[7] = 0.0f;   // never driven
  wmax[9] = 0.0f;  // dead column
  for (float alpha : {0.0f, 0.5f, 0.8f}) {
    const std::vector<float> s = SmoothQuantScale(act, wmax, alpha);
    EXPECT_EQ(s[7], 1.0f);
    EXPECT_EQ(s[9], 1.0f);
    for (size_t c = 0; c < s.size(); ++c) {
      if (c == 7 || c == 9) continue;
      // After smoothing the ranges are max|X|/s = (max|X|·max|W|)^(1−α) and max|W|·s =
      // (max|X|·max|W|)^α: equal at α = 0.5...
      const double x = act[c] / s[c], w = wmax[c] * s[c];
      EXPECT_NEAR(std::log(x / w), (1 - 2 * alpha) * std::log((double)act[c] * wmax[c]), 1e-4) << c;
      // ...and their product is unchanged (the model computes the same function).
      EXPECT_NEAR(x * w, (double)act[c] * wmax[c], 1e-5 * act[c] * wmax[c]) << c;
    }
  }
}

std::vector<float> ExactLogits(const Model& m, const std::vector<int32_t>& tokens) {
  Session s(m, {.threads = 1, .activations = Activations::kExact});
  const auto l = s.Eval(tokens, true);
  return {l.begin(), l.end()};
}

ActivationStats Collect(const Model& m, int samples) {
  StatsOptions so;
  so.hessian = true;
  so.threads = 2;
  return CollectActivationStats(m, CalibrationSamples(m, kTrainText, {.samples = samples, .tokens = 64}), so);
}

// Every matrix re-encoded as f32: all groups are smoothed and nothing is rounded.
std::optional<DType> KeepF32(const Tensor&) { return DType::kF32; }

TEST(CompressSmoothQuant, FoldingKeepsTheFunctionAndStatisticsFollowTheInputs) {
  const Model m = LoadGgufModel(kStoriesGguf);
  const ActivationStats stats = Collect(m, 4);
  const SmoothQuantResult r = SmoothQuantModel(m, stats, 0.5f, KeepF32);
  int smoothed = 0;
  for (const SmoothGroupChoice& g : r.groups) smoothed += g.smoothed;
  EXPECT_EQ(smoothed, 3 * m.config.n_layers);  // qkv, gate/up, down (GQA: no v → o group)
  const std::vector<int32_t> tokens = {1, 5, 17, 42, 9, 3, 28, 11};
  const auto a = ExactLogits(m, tokens), b = ExactLogits(r.model, tokens);
  double max_abs = 0, max_err = 0;
  for (size_t i = 0; i < a.size(); ++i)
    max_abs = std::max(max_abs, (double)std::abs(a[i])), max_err = std::max(max_err, (double)std::abs(a[i] - b[i]));
  EXPECT_LT(max_err, 2e-5 * max_abs);
  // The predicted statistics of the smoothed inputs equal those collected on the smoothed model.
  const ActivationStats again = Collect(r.model, 4);
  for (const auto& [name, want] : again.by_weight) {
    const InputStats* got = r.stats.Find(name);
    ASSERT_NE(got, nullptr) << name;
    for (int64_t c = 0; c < want->columns; ++c) {
      EXPECT_NEAR(got->sum_sq[c], want->sum_sq[c], 1e-3 * want->sum_sq[c] + 1e-9) << name << " " << c;
      EXPECT_NEAR(got->max_abs[c], want->max_abs[c], 1e-3 * want->max_abs[c] + 1e-9) << name << " " << c;
      EXPECT_NEAR(got->hessian[c * want->columns + c], want->hessian[c * want->columns + c],
                  1e-3 * want->hessian[c * want->columns + c] + 1e-9)
          << name << " " << c;
    }
  }
}

// stories260K with two outlier channels in every block's normalized inputs, made the way large
// models have them (a norm weight 40x larger on those channels, the reading columns 40x smaller):
// the same function, but per-token int8 activations now lose the other channels' precision.
Model WithOutlierChannels(const Model& m) {
  Model out = m;
  for (int l = 0; l < m.config.n_layers; ++l) {
    for (const auto& [norm, readers] :
         {std::pair<std::string, std::vector<std::string>>{"attn_norm", {"attn_q", "attn_k", "attn_v"}},
          std::pair<std::string, std::vector<std::string>>{"ffn_norm", {"ffn_gate", "ffn_up"}}}) {
      std::vector<float> s(m.config.dim, 1.0f);
      s[3] = s[41] = 40.0f;
      AwqGroup g{AwqGroup::Prev::kNorm, BlockTensorName(l, (norm + ".weight").c_str()), {}};
      for (const std::string& w : readers) g.weights.push_back(BlockTensorName(l, (w + ".weight").c_str()));
      for (float& v : s) v = 1.0f / v;  // fold divides the norm by s: s = 1/40 multiplies it by 40
      FoldAwqScale(out.weights, g, s);
    }
  }
  return out;
}

TEST(CompressSmoothQuant, W8A8LosesLessWithOutlierChannelsSmoothed) {
  const Model m = WithOutlierChannels(LoadGgufModel(kStoriesGguf));
  const ActivationStats stats = Collect(m, 8);
  const std::string text = ReadFileToString(kDevText).substr(0, 30000);  // a few windows are enough
  KldOptions ko;
  ko.ppl.ctx = 128;
  ko.ppl.max_chunks = 4;
  ko.ppl.threads = 2;
  QuantizeOptions plain, smooth;
  plain.rules = smooth.rules = ParseTypeRules("*=w8a8");
  plain.threads = smooth.threads = 2;
  smooth.stats = &stats;
  smooth.smooth_alpha = 0.5f;
  QuantizeSummary sum;
  const Model a = QuantizeModel(m, plain), b = QuantizeModel(m, smooth, &sum);
  int smoothed = 0;
  for (const TensorChoice& c : sum.tensors) smoothed += c.smoothed;
  EXPECT_EQ(smoothed, 6 * m.config.n_layers);  // q, k, v, gate, up, down (w8a8 fits any row)
  const double ka = KlDivergence(a, &m, text, ko).kld_mean, kb = KlDivergence(b, &m, text, ko).kld_mean;
  std::printf("  w8a8 with outlier channels: KLD plain %.5f, smoothed %.5f\n", ka, kb);
  EXPECT_LT(kb, 0.5 * ka);
  // Without calibration statistics there is nothing to smooth with.
  QuantizeOptions no_stats = smooth;
  no_stats.stats = nullptr;
  EXPECT_THROW(QuantizeModel(m, no_stats), Error);
}

}  // namespace
}  // namespace smelt
