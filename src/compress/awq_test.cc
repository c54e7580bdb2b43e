// AWQ against independent references: the Hessian-form loss equals the output error computed
// from explicit inputs; folded scales leave the f32 model's function unchanged (stories260K with
// GQA, a synthetic model and a Qwen2-style one without, so attn_v → attn_output and its bias are
// folded too); the quantized model is the folded original encoded by the format's own encoder;
// the search never loses to α = 0 and is the minimum over its grid; and end to end,
// 4-bit AWQ has lower KL-divergence than round-to-nearest on held-out text (the paper's ordering).
#include "compress/awq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
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
#include "model/synth.h"
#include "runtime/session.h"
#include "shared_assets.h"
#include "tiny_models.h"

namespace smelt {
namespace {

using assets::kStoriesGguf;
using assets::kTrainText;
using assets::kDevText;

// ||Q(W S) S⁻¹ X − W X||² from explicit inputs X (N, C), with Q written out through the format
// table's encoder and decoder: the loss AwqScaledLoss computes in Hessian form.
double DirectLoss(const std::vector<float>& W, int64_t OC, int64_t C, const std::vector<float>& X, int64_t N,
                  const std::vector<float>& s, DType type, const std::vector<float>* mean_sq) {
  const TypeTraits& tr = Traits(type);
  std::vector<float> Wq(OC * C), row(C), imp(C);
  std::vector<uint64_t> buf(RowBytes(type, C) / 8 + 1);
  if (mean_sq)
    for (int64_t c = 0; c < C; ++c) imp[c] = (*mean_sq)[c] / (s[c] * s[c]);
  for (int64_t r = 0; r < OC; ++r) {
    for (int64_t c = 0; c < C; ++c) row[c] = W[r * C + c] * s[c];
    if (mean_sq) {
      tr.from_float_weighted(row.data(), imp.data(), buf.data(), C);
    } else {
      tr.from_float(row.data(), buf.data(), C);
    }
    tr.to_float(buf.data(), row.data(), C);
    for (int64_t c = 0; c < C; ++c) Wq[r * C + c] = row[c] / s[c];
  }
  double loss = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t r = 0; r < OC; ++r) {
      double y = 0, yq = 0;
      for (int64_t c = 0; c < C; ++c) {
        y += (double)W[r * C + c] * X[n * C + c];
        yq += (double)Wq[r * C + c] * X[n * C + c];
      }
      loss += (yq - y) * (yq - y);
    }
  return loss;
}

TEST(CompressAwq, HessianLossEqualsTheDirectOutputError) {
  const int64_t OC = 12, C = 64, N = 80;
  const std::vector<float> W = tiny::RandomVector(OC * C, 1, 0.1f);
  std::vector<float> X = tiny::RandomVector(N * C, 2);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) X[n * C + c] *= 0.2f + (float)(c % 7);  // uneven channel magnitudes
  std::vector<double> H(C * C, 0.0);
  std::vector<float> mean_abs(C, 0.0f), mean_sq(C, 0.0f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < C; ++i) {
      mean_abs[i] += std::abs(X[n * C + i]) / N;
      mean_sq[i] += X[n * C + i] * X[n * C + i] / N;
      for (int64_t j = 0; j < C; ++j) H[i * C + j] += (double)X[n * C + i] * X[n * C + j];
    }
  for (DType type : {DType::kQ4_0, DType::kI4A_G32, DType::kIQ4_NL}) {
    for (double alpha : {0.0, 0.5, 0.9}) {
      const std::vector<float> s = AwqScale(mean_abs, alpha);
      for (bool weighted : {false, true}) {
        if (weighted && !Traits(type).from_float_weighted) continue;
        const AwqEncoder enc{type, weighted ? mean_sq.data() : nullptr};
        const double fast = AwqScaledLoss(W.data(), OC, C, H.data(), s.data(), enc, 1);
        const double direct = DirectLoss(W, OC, C, X, N, s, type, weighted ? &mean_sq : nullptr);
        EXPECT_GT(direct, 0);
        EXPECT_NEAR(fast, direct, 1e-9 * direct) << DTypeName(type) << " alpha " << alpha << " weighted " << weighted;
        EXPECT_EQ(fast, AwqScaledLoss(W.data(), OC, C, H.data(), s.data(), enc, 3)) << "thread count changed it";
      }
    }
  }
}

TEST(CompressAwq, ScaleIsNormalisedAndOneAtAlphaZero) {
  const std::vector<float> a = {0.5f, 2.0f, 0.0f, 8.0f, 1.0f};
  for (float v : AwqScale(a, 0.0)) EXPECT_EQ(v, 1.0f);
  const std::vector<float> s = AwqScale(a, 0.5);
  // s_c ∝ max(a_c^α, 1e-4), normalised so that max(s)·min(s) = 1.
  const double k = s[0] / std::sqrt(0.5);
  EXPECT_NEAR(s[1], k * std::sqrt(2.0), 1e-6 * s[1]);
  EXPECT_NEAR(s[2], k * 1e-4, 1e-6 * k);
  EXPECT_NEAR((double)*std::max_element(s.begin(), s.end()) * *std::min_element(s.begin(), s.end()), 1.0, 1e-6);
}

std::vector<float> Logits(const Model& m, const std::vector<int32_t>& tokens) {
  Session session(m, {.threads = 1, .context = (int)tokens.size(), .activations = Activations::kExact});
  const auto l = session.Eval(tokens, /*all_logits=*/true);
  return {l.begin(), l.end()};
}

// Folds a random positive scale (spread over e^±1) into every group and compares the logits.
void ExpectFoldingKeepsTheFunction(const Model& m, size_t want_groups) {
  const std::vector<AwqGroup> groups = AwqGroups(m);
  ASSERT_EQ(groups.size(), want_groups);
  Model folded = m;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const AwqGroup& g : groups) {
    std::vector<float> s(m.weights.Get(g.weights[0]).ne[0]);
    for (float& v : s) v = std::exp(u(rng));
    FoldAwqScale(folded.weights, g, s);
  }
  EXPECT_NE(DequantizeAll(folded.weights.Get("blk.0.attn_norm.weight")),
            DequantizeAll(m.weights.Get("blk.0.attn_norm.weight")));
  const std::vector<int32_t> tokens = {1, 5, 17, 42, 9, 3, 28, 11};
  const auto a = Logits(m, tokens), b = Logits(folded, tokens);
  double max_abs = 0, max_err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_abs = std::max(max_abs, (double)std::abs(a[i]));
    max_err = std::max(max_err, (double)std::abs(a[i] - b[i]));
  }
  EXPECT_GT(max_abs, 0);
  EXPECT_LT(max_err, 2e-5 * max_abs) << m.source;
}

TEST(CompressAwq, FoldingKeepsTheUnquantizedFunction) {
  // stories260K has 8 heads on 4 kv heads: no attn_v → attn_output group.
  const Model stories = LoadGgufModel(kStoriesGguf);
  ExpectFoldingKeepsTheFunction(stories, 3u * stories.config.n_layers);
  Model synth = SynthesizeModel({.dim = 64, .layers = 2, .heads = 4, .ff = 96, .vocab = 300, .context = 32});
  synth.source = "synth";
  ExpectFoldingKeepsTheFunction(synth, 4u * 2);
  // Qwen2-style Q/K/V biases: attn_v's bias is divided with its rows.
  Model qwen = tiny::TinyLlama({.dim = 32, .heads = 4, .kv_heads = 4, .vocab = 50, .qwen2 = true, .seed = 9});
  qwen.source = "tiny qwen2";
  ASSERT_TRUE(qwen.weights.Contains("blk.0.attn_v.bias"));
  ExpectFoldingKeepsTheFunction(qwen, 4u * 2);
}

// The written model is the original with each group's scale folded in, encoded by the format's
// reference encoder: recomputed here from the original weights, the statistics and the α the
// summary reports, on a model without GQA and with Q/K/V biases (all four groups of a block).
TEST(CompressAwq, QuantizedModelIsTheFoldedOriginalEncoded) {
  const Model m =
      tiny::TinyLlama({.dim = 32, .heads = 4, .kv_heads = 4, .ff = 64, .vocab = 50, .qwen2 = true, .seed = 11});
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> tok(1, 49);
  std::vector<std::vector<int32_t>> samples(4, std::vector<int32_t>(24));
  for (auto& sample : samples)
    for (int32_t& t : sample) t = tok(rng);
  StatsOptions so;
  so.hessian = true;
  const ActivationStats stats = CollectActivationStats(m, samples, so);
  QuantizeOptions o;
  o.rules = ParseTypeRules("*=q4_0");
  o.method = QuantMethod::kAwq;
  o.stats = &stats;
  o.awq.grid = 8;
  QuantizeSummary sum;
  const Model q = QuantizeModel(m, o, &sum);
  std::map<std::string, double> alpha;
  int scaled_o = 0, scaled_down = 0;  // so that the rows of attn_v, its bias and ffn_up are checked
  for (const TensorChoice& c : sum.tensors) {
    if (!c.awq) continue;
    alpha[c.name] = c.awq_alpha;
    scaled_o += c.awq_alpha > 0 && c.name.ends_with("attn_output.weight");
    scaled_down += c.awq_alpha > 0 && c.name.ends_with("ffn_down.weight");
  }
  ASSERT_EQ(alpha.size(), 7u * m.config.n_layers);
  EXPECT_GT(scaled_o, 0);
  EXPECT_GT(scaled_down, 0);
  auto scale_of = [&](const std::string& weight) { return AwqScale(stats.Find(weight)->MeanAbs(), alpha.at(weight)); };
  for (int l = 0; l < m.config.n_layers; ++l) {
    auto name = [l](const char* suffix) { return BlockTensorName(l, suffix); };
    const std::vector<float> s_vo = scale_of(name("attn_output.weight")), s_down = scale_of(name("ffn_down.weight"));
    for (const char* suffix : {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                               "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"}) {
      const std::string n = name(suffix);
      const Tensor& t = m.weights.Get(n);
      const int64_t C = t.ne[0];
      const std::vector<float> s = scale_of(n);
      std::vector<float> w = DequantizeAll(t);
      for (int64_t r = 0; r < t.nrows(); ++r)
        for (int64_t c = 0; c < C; ++c) {
          w[r * C + c] *= s[c];
          if (n.ends_with("ffn_up.weight")) w[r * C + c] /= s_down[r];
          if (n.ends_with("attn_v.weight")) w[r * C + c] /= s_vo[r];
        }
      const Tensor want = tiny::EncodeTensor(MakeF32Tensor(n, {C, t.ne[1]}, std::move(w)), DType::kQ4_0);
      const Tensor& got = q.weights.Get(n);
      ASSERT_EQ(got.nbytes, want.nbytes) << n;
      EXPECT_EQ(std::memcmp(got.data, want.data, want.nbytes), 0) << n;
    }
    auto expect_divided = [&](const std::string& n, const std::vector<float>& s) {
      const std::vector<float> a = DequantizeAll(m.weights.Get(n)), b = DequantizeAll(q.weights.Get(n));
      for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(b[i], a[i] / s[i]) << n << " " << i;
    };
    expect_divided(name("attn_norm.weight"), scale_of(name("attn_q.weight")));
    expect_divided(name("ffn_norm.weight"), scale_of(name("ffn_gate.weight")));
    expect_divided(name("attn_v.bias"), s_vo);
  }
}

struct StoriesCalib {
  Model m = LoadGgufModel(kStoriesGguf);
  ActivationStats stats;
  StoriesCalib() {
    StatsOptions so;
    so.hessian = true;
    so.threads = 1;
    stats = CollectActivationStats(m, CalibrationSamples(m, kTrainText, {.samples = 16, .tokens = 128}), so);
  }
};

// On stories260K the chosen α is the grid's least loss (recomputed α by α), never above α = 0's,
// and strictly below it for some group.
TEST(CompressAwq, SearchPicksTheGridMinimumAndNeverLosesToRtn) {
  const StoriesCalib s;
  auto target = [](const Tensor& t) -> std::optional<DType> { return FallbackType(DType::kQ4_0, t.ne[0]); };
  const AwqOptions opt{.grid = 10, .clip = false, .threads = 1};
  const AwqFolded f = AwqScaleModel(s.m, s.stats, target, opt);
  int searched = 0, better = 0;
  for (const AwqGroupChoice& g : f.groups) {
    if (!g.searched) {
      EXPECT_NE(g.group.weights[0].find("ffn_down"), std::string::npos) << "172-value rows fall back to f16";
      continue;
    }
    ++searched;
    const InputStats& st = *s.stats.Find(g.group.weights[0]);
    const std::vector<float> mean_abs = st.MeanAbs();
    double least = INFINITY;
    for (int i = 0; i < opt.grid; ++i) {
      const std::vector<float> sc = AwqScale(mean_abs, (double)i / opt.grid);
      double loss = 0;
      for (const std::string& n : g.group.weights) {
        const Tensor& t = s.m.weights.Get(n);
        const std::vector<float> w = DequantizeAll(t);
        loss += AwqScaledLoss(w.data(), t.nrows(), t.ne[0], st.hessian.data(), sc.data(), {*target(t), nullptr}, 1);
      }
      if (i == 0) {
        EXPECT_EQ(loss, g.result.loss_rtn);
      }
      least = std::min(least, loss);
    }
    EXPECT_EQ(g.result.loss, least) << g.group.prev_name;
    EXPECT_LE(g.result.loss, g.result.loss_rtn) << g.group.prev_name;
    if (g.result.loss < g.result.loss_rtn) ++better;
  }
  EXPECT_EQ(searched, 2 * s.m.config.n_layers);
  EXPECT_GT(better, 0);
}

// The staged search (one group's Hessian at a time) chooses what the search on every layer's
// statistics at once chooses: the same α for every group, losses and folded weights equal up to
// the two passes' summation order; the statistics it hands back match too.
TEST(CompressAwq, StagedSearchMatchesTheSearchOnWholeModelStatistics) {
  const Model m = LoadGgufModel(kStoriesGguf);
  const auto samples = CalibrationSamples(m, kTrainText, {.samples = 6, .tokens = 96});
  StatsOptions so;
  so.hessian = true;
  const ActivationStats whole = CollectActivationStats(m, samples, so);
  auto target = [](const Tensor& t) -> std::optional<DType> { return FallbackType(DType::kQ4_0, t.ne[0]); };
  const AwqOptions opt{.grid = 10, .clip = false, .threads = 2};
  const AwqFolded want = AwqScaleModel(m, whole, target, opt);
  ActivationStats staged_stats;
  StatsOptions staged;
  staged.threads = 2;
  const AwqFolded got = AwqScaleModelStaged(m, samples, staged, target, opt, &staged_stats);
  ASSERT_EQ(got.groups.size(), want.groups.size());
  int searched = 0;
  for (size_t i = 0; i < got.groups.size(); ++i) {
    const AwqGroupChoice &g = got.groups[i], &w = want.groups[i];
    EXPECT_EQ(g.group.weights, w.group.weights);
    EXPECT_EQ(g.searched, w.searched) << w.group.prev_name;
    if (!w.searched) continue;
    ++searched;
    EXPECT_EQ(g.result.alpha, w.result.alpha) << w.group.prev_name;
    EXPECT_NEAR(g.result.loss, w.result.loss, 1e-4 * w.result.loss) << w.group.prev_name;
    EXPECT_NEAR(g.result.loss_rtn, w.result.loss_rtn, 1e-4 * w.result.loss_rtn) << w.group.prev_name;
  }
  EXPECT_EQ(searched, 2 * m.config.n_layers);
  for (const Tensor& t : want.model.weights.all()) {
    const std::string& name = t.name;
    const std::vector<float> a = DequantizeAll(t), b = DequantizeAll(got.model.weights.Get(name));
    double d = 0, n = 0;
    for (size_t i = 0; i < a.size(); ++i) d += std::pow((double)a[i] - b[i], 2), n += (double)a[i] * a[i];
    EXPECT_LE(std::sqrt(d), 1e-5 * std::sqrt(n) + 1e-12) << name;
  }
  for (const auto& [name, st] : whole.by_weight) {
    const InputStats* s = staged_stats.Find(name);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_TRUE(s->hessian.empty()) << name << ": Hessians are freed group by group";
    const std::vector<float> a = st->MeanSquare(), b = s->MeanSquare();
    for (size_t c = 0; c < a.size(); ++c) EXPECT_NEAR(b[c], a[c], 1e-4 * a[c] + 1e-9) << name;
  }
}

// End to end: AWQ (then rtn, and with the clipping search) has a lower KL-divergence to the f32
// model than plain round-to-nearest on held-out text, for q4_0 and the AWQ-layout i4a_g32.
TEST(CompressAwqSlow, LowersKlDivergenceOnStories260K) {
  const StoriesCalib s;
  const std::string text = ReadFileToString(kDevText);
  KldOptions ko;
  ko.ppl.ctx = 128;
  ko.ppl.max_chunks = 12;
  ko.ppl.threads = 1;
  for (const char* type : {"q4_0", "i4a_g32"}) {
    QuantizeOptions rtn, awq;
    rtn.rules = awq.rules = ParseTypeRules(std::string("*=") + type);
    rtn.threads = awq.threads = 1;
    awq.method = QuantMethod::kAwq;
    awq.stats = &s.stats;
    QuantizeSummary sum;
    const Model a = QuantizeModel(s.m, rtn), b = QuantizeModel(s.m, awq, &sum);
    int with_alpha = 0;
    for (const TensorChoice& c : sum.tensors) with_alpha += c.awq && c.awq_alpha > 0;
    EXPECT_GT(with_alpha, 0) << type;
    const double ka = KlDivergence(a, &s.m, text, ko).kld_mean, kb = KlDivergence(b, &s.m, text, ko).kld_mean;
    EXPECT_LT(kb, ka) << type;
    std::printf("  %s: KLD rtn %.5f, awq %.5f\n", type, ka, kb);
  }
  QuantizeOptions no_stats;
  no_stats.rules = ParseTypeRules("*=q4_0");
  no_stats.method = QuantMethod::kAwq;
  EXPECT_THROW(QuantizeModel(s.m, no_stats), Error);
}

}  // namespace
}  // namespace smelt
