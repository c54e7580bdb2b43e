// Structured pruning: the smaller model computes exactly what the full model computes with the
// removed units silenced (an independent construction: zeroed weights in the original shape), its
// importance scores rank units as ablation does, and bad ratios fail cleanly.
#include "compress/structured.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "compress/calibration.h"
#include "core/error.h"
#include "eval/kld.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "io/load.h"
#include "runtime/session.h"
#include "shared_assets.h"
#include "tiny_models.h"

namespace smelt {
namespace {

using assets::kStoriesGguf;

std::vector<float> UnpackedLogits(const Model& m, const std::vector<int32_t>& tokens) {
  Session s(m, {.context = (int)tokens.size(), .activations = Activations::kExact, .repack = false});
  std::span<const float> z = s.Eval(tokens, true);
  return {z.begin(), z.end()};
}

// `m` with columns [u * per, (u + 1) * per) of tensor `name` set to zero for every u in `units`.
void ZeroColumns(Model& m, const std::string& name, int per, const std::vector<int>& units) {
  const Tensor& t = m.weights.Get(name);
  std::vector<float> w = DequantizeAll(t);
  for (int64_t r = 0; r < t.nrows(); ++r)
    for (int u : units)
      for (int i = 0; i < per; ++i) w[(size_t)(r * t.ne[0] + (int64_t)u * per + i)] = 0.0f;
  m.weights.Set(MakeF32Tensor(name, {t.ne[0], t.ne[1]}, std::move(w)));
}

void ExpectClose(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += (a[i] - b[i]) * (double)(a[i] - b[i]), norm += (double)b[i] * b[i];
  EXPECT_LE(std::sqrt(diff), 1e-5 * std::sqrt(norm));
}

const std::vector<int32_t> kTokens = {1, 7, 3, 22, 9, 41, 5, 17, 30, 2, 11, 8};

TEST(CompressStructured, SmallerModelEqualsSilencedUnitsInTheFullOne) {
  for (bool qwen2 : {false, true}) {
    const Model m = tiny::TinyLlama({.dim = 32, .layers = 3, .heads = 4, .kv_heads = 2, .ff = 24, .qwen2 = qwen2});
    const ModelConfig& c = m.config;
    const int G = c.n_heads / c.n_kv_heads;
    {  // heads: group 1 of layer 0, group 0 of layers 1 and 2
      const std::vector<std::vector<int>> removed = {{1}, {0}, {0}};
      const Model p = RemoveUnits(m, StructuredTarget::kHeads, removed);
      EXPECT_EQ(p.config.n_kv_heads, 1);
      EXPECT_EQ(p.config.n_heads, G);
      EXPECT_EQ(p.config.head_dim, c.head_dim);
      Model ref = m;
      for (int l = 0; l < c.n_layers; ++l) {
        std::vector<int> q;
        for (int g : removed[l])
          for (int h = 0; h < G; ++h) q.push_back(g * G + h);
        ZeroColumns(ref, BlockTensorName(l, "attn_output.weight"), c.head_dim, q);
      }
      ExpectClose(UnpackedLogits(p, kTokens), UnpackedLogits(ref, kTokens));
    }
    {  // channels: a different third of the channels in each layer
      const std::vector<std::vector<int>> removed = {{0, 5, 6, 23, 9, 12, 1, 2}, {3, 4, 7, 8, 10, 11, 20, 21},
                                                     {13, 14, 15, 16, 17, 18, 19, 22}};
      const Model p = RemoveUnits(m, StructuredTarget::kChannels, removed);
      EXPECT_EQ(p.config.ff, 16);
      Model ref = m;
      for (int l = 0; l < c.n_layers; ++l) ZeroColumns(ref, BlockTensorName(l, "ffn_down.weight"), 1, removed[l]);
      ExpectClose(UnpackedLogits(p, kTokens), UnpackedLogits(ref, kTokens));
    }
    {  // layers: the middle block becomes the identity when both of its outputs are zero
      const Model p = RemoveUnits(m, StructuredTarget::kLayers, {{1}});
      EXPECT_EQ(p.config.n_layers, 2);
      EXPECT_NE(p.weights.Find("blk.1.attn_q.weight"), nullptr);
      EXPECT_EQ(p.weights.Find("blk.2.attn_q.weight"), nullptr);
      Model ref = m;
      ZeroColumns(ref, "blk.1.attn_output.weight", (int)c.q_dim(), {0});
      ZeroColumns(ref, "blk.1.ffn_down.weight", c.ff, {0});
      ExpectClose(UnpackedLogits(p, kTokens), UnpackedLogits(ref, kTokens));
    }
  }
}

TEST(CompressStructured, QuantizedRowsAreKeptByteForByteAndTheFileRoundTrips) {
  Model m = tiny::TinyLlama({.dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 96});
  for (int l = 0; l < 2; ++l)
    for (const char* s : {"attn_q.weight", "attn_k.weight", "ffn_gate.weight", "ffn_up.weight"}) {
      const Tensor& t = m.weights.Get(BlockTensorName(l, s));
      m.weights.Set(tiny::EncodeTensor(t, DType::kQ8_0));
    }
  const Model p = RemoveUnits(m, StructuredTarget::kHeads, {{0}, {1}});
  const Tensor& a = m.weights.Get("blk.0.attn_k.weight");
  const Tensor& b = p.weights.Get("blk.0.attn_k.weight");
  EXPECT_EQ(b.type, DType::kQ8_0);
  const size_t rb = RowBytes(a.type, a.ne[0]), hd = (size_t)m.config.head_dim;
  ASSERT_EQ(b.nbytes, rb * hd);
  EXPECT_EQ(std::memcmp(b.data, static_cast<const uint8_t*>(a.data) + rb * hd, b.nbytes), 0);  // kv head 1 kept

  // The head size no longer follows from dim / heads: the file must say it.
  const auto path = std::filesystem::temp_directory_path() / ("smelt-structured-" + std::to_string(::getpid()) + ".gguf");
  SaveGgufModel(p, path.string(), {});
  const Model back = LoadGgufModel(path.string());
  std::filesystem::remove(path);
  EXPECT_EQ(back.config.head_dim, m.config.head_dim);
  EXPECT_EQ(back.config.n_heads, 2);
  ExpectClose(UnpackedLogits(back, kTokens), UnpackedLogits(p, kTokens));
}

double HeldOutKld(const Model& m, const Model& base) {
  std::ifstream f(assets::kDevText);
  std::stringstream ss;
  ss << f.rdbuf();
  KldOptions o;
  o.ppl.ctx = 128;
  o.ppl.max_chunks = 12;
  return KlDivergence(m, &base, ss.str(), o).kld_mean;
}

// The n units of each row of `scores` with the highest scores.
std::vector<std::vector<int>> Highest(const std::vector<std::vector<double>>& scores, int n) {
  std::vector<std::vector<int>> out;
  for (const auto& s : scores) {
    std::vector<int> order(s.size());
    for (size_t i = 0; i < s.size(); ++i) order[i] = (int)i;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b]; });
    order.resize(n);
    std::sort(order.begin(), order.end());
    out.push_back(order);
  }
  return out;
}

TEST(CompressStructuredSlow, LowScoredUnitsCostLessThanHighScoredOnesOnStories260K) {
  const Model m = LoadModel(kStoriesGguf);
  const auto samples = CalibrationSamples(m, assets::kTrainText, {.samples = 16, .tokens = 128});
  struct Case {
    StructuredTarget target;
    double ratio;
    LayerScore score;
  };
  for (const Case& k : {Case{StructuredTarget::kHeads, 0.25, LayerScore::kCosine},
                        Case{StructuredTarget::kChannels, 0.3, LayerScore::kCosine},
                        Case{StructuredTarget::kLayers, 0.2, LayerScore::kCosine},
                        Case{StructuredTarget::kLayers, 0.2, LayerScore::kKld}}) {
    StructuredOptions o;
    o.target = k.target;
    o.ratio = k.ratio;
    o.layer_score = k.score;
    StructuredReport r;
    const Model low = PruneStructured(m, samples, o, &r);
    const Model high = RemoveUnits(m, k.target, Highest(r.scores, r.removed_per_layer));
    EXPECT_LT(r.params_after, r.params_before);
    const double kl_low = HeldOutKld(low, m), kl_high = HeldOutKld(high, m);
    std::printf("%s ratio %.2f (%s): KLD removing lowest-scored %.4f, highest-scored %.4f\n",
                StructuredTargetName(k.target), k.ratio, k.score == LayerScore::kKld ? "kld" : "cosine", kl_low, kl_high);
    EXPECT_LT(kl_low, kl_high) << StructuredTargetName(k.target);
  }
}

TEST(CompressStructured, LayerKldScoreIsTheMeasuredCostOfSkippingThatBlock) {
  const Model m = tiny::TinyLlama({.dim = 32, .layers = 3, .heads = 4, .kv_heads = 2, .ff = 24});
  const std::vector<std::vector<int32_t>> samples = {kTokens};
  StructuredOptions o;
  o.target = StructuredTarget::kLayers;
  o.layer_score = LayerScore::kKld;
  const auto scores = StructuredScores(m, samples, o);
  ASSERT_EQ(scores.size(), 1u);
  const std::vector<float> full = UnpackedLogits(m, kTokens);
  const int V = m.config.vocab;
  for (int l = 0; l < 3; ++l) {
    const std::vector<float> z = UnpackedLogits(RemoveUnits(m, StructuredTarget::kLayers, {{l}}), kTokens);
    double kl = 0;  // plain loops, in double
    for (size_t t = 0; t < kTokens.size(); ++t) {
      double mp = -1e300, mq = -1e300, sp = 0, sq = 0;
      for (int i = 0; i < V; ++i) mp = std::max(mp, (double)full[t * V + i]), mq = std::max(mq, (double)z[t * V + i]);
      for (int i = 0; i < V; ++i) sp += std::exp(full[t * V + i] - mp), sq += std::exp(z[t * V + i] - mq);
      for (int i = 0; i < V; ++i) {
        const double lp = full[t * V + i] - mp - std::log(sp), lq = z[t * V + i] - mq - std::log(sq);
        kl += std::exp(lp) * (lp - lq);
      }
    }
    EXPECT_NEAR(scores[0][l], kl / kTokens.size(), 1e-6 * (1 + kl));
  }
}

TEST(CompressStructured, BadRatiosFailWithOneLine) {
  const Model m = tiny::TinyLlama({.dim = 32, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 24});
  const std::vector<std::vector<int32_t>> samples = {kTokens};
  for (double ratio : {-0.1, 1.0, 1.5, 0.8}) {  // 0.8 of 2 kv groups rounds to both
    StructuredOptions o;
    o.target = StructuredTarget::kHeads;
    o.ratio = ratio;
    try {
      PruneStructured(m, samples, o);
      ADD_FAILURE() << "ratio " << ratio << " accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("tiny"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  EXPECT_THROW(ParseStructuredTarget("rows", "--structured"), Error);
  EXPECT_THROW(PruneStructured(m, {}, {}), Error);
}

// Kept channels a multiple of M: the multiple nearest to what the ratio keeps (brute force over
// every multiple that fits, ties to the larger), never none, never more than there are.
TEST(CompressStructured, MultipleOfKeepsTheNearestWholeMultiple) {
  for (int units : {96, 172, 1000, 2816})
    for (int M : {32, 256}) {
      if (units < M) {
        EXPECT_THROW(UnitsToRemove(units, 0.25, "m", M), Error);
        continue;
      }
      for (double ratio = 0.0; ratio < 0.999; ratio += 0.0625) {
        const int kept = units - UnitsToRemove(units, ratio, "m", M);
        const double want = (1.0 - ratio) * units;
        int best = M;
        for (int k = M; k <= units; k += M)
          if (std::fabs(k - want) <= std::fabs(best - want)) best = k;
        EXPECT_EQ(kept, best) << units << " units, ratio " << ratio << ", multiple " << M;
        EXPECT_EQ(kept % M, 0);
      }
    }
  EXPECT_EQ(UnitsToRemove(172, 0.25, "m", 1), UnitsToRemove(172, 0.25, "m"));
  EXPECT_THROW(UnitsToRemove(172, 0.25, "m", 0), Error);
}

}  // namespace
}  // namespace smelt
