// The training model: its forward pass against the runtime's reference forward on a real model,
// and its backward pass (one block, a whole tiny model, stories260K) against finite differences.
#include "train/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "formats/types.h"
#include "io/gguf_model.h"
#include "model/llama_naive.h"
#include "model/synth.h"
#include "shared_assets.h"
#include "train/grad_check_test_util.h"
#include "train/tiny_model_test_util.h"
#include "train/ops.h"

namespace smelt::train {
namespace {

using testing::ExpectGradient;
using testing::kF32Eps;
using testing::Project;
using testing::LossNoise;
using testing::RandomBatch;
using testing::RoughModel;
using testing::TinyConfig;

TEST(TrainModel, LogitsEqualTheReferenceForwardOnStories260K) {
  const Model ref = LoadGgufModel(assets::kStoriesGguf);
  const TrainModel m = TrainModel::FromModel(ref);
  Batch b = RandomBatch(2, 24, ref.config.vocab, 1);
  for (int64_t t = 0; t < b.T; ++t) b.targets[t] = b.inputs[t + 1 < b.T ? t + 1 : 0];
  b.targets[3] = kIgnoreIndex;
  Workspace ws;
  const std::vector<float> logits = Logits(m, b, ws, 2);
  double scored = 0, want_loss = 0;
  for (int64_t s = 0; s < b.B; ++s) {
    const std::span<const int32_t> seq(b.inputs.data() + s * b.T, b.T);
    const std::vector<float> want = NaiveLlamaLogits(ref, seq);
    for (int64_t t = 0; t < b.T; ++t) {
      const float* row = &logits[(s * b.T + t) * ref.config.vocab];
      const float* wrow = &want[t * ref.config.vocab];
      double norm = 0, lse = 0, mx = -1e30;
      for (int v = 0; v < ref.config.vocab; ++v) norm = std::max(norm, (double)std::fabs(wrow[v]));
      for (int v = 0; v < ref.config.vocab; ++v) {
        ASSERT_NEAR(row[v], wrow[v], 1e-4 * norm) << "sequence " << s << " position " << t << " token " << v;
        mx = std::max(mx, (double)wrow[v]);
      }
      for (int v = 0; v < ref.config.vocab; ++v) lse += std::exp(wrow[v] - mx);
      const int32_t target = b.targets[s * b.T + t];
      if (target == kIgnoreIndex) continue;
      want_loss += std::log(lse) + mx - wrow[target];
      ++scored;
    }
  }
  EXPECT_EQ(ScoredTargets(b), (int64_t)scored);
  const double loss = Loss(m, b, ws, 2);
  EXPECT_NEAR(loss / scored, want_loss / scored, 1e-4 * want_loss / scored);
}

TEST(TrainModel, QuantizedWeightsAreDequantized) {
  SynthOptions o;
  o.dim = 64, o.layers = 1, o.heads = 4, o.ff = 96, o.vocab = 300;
  Model src = SynthesizeModel(o);
  Model q8 = src;
  const Tensor& w = src.weights.Get("blk.0.ffn_up.weight");
  std::vector<float> values = DequantizeAll(w);
  std::vector<uint8_t> bytes(RowBytes(DType::kQ8_0, w.ne[0]) * w.ne[1]);
  for (int64_t r = 0; r < w.ne[1]; ++r)
    Traits(DType::kQ8_0).from_float(&values[r * w.ne[0]], &bytes[r * RowBytes(DType::kQ8_0, w.ne[0])], w.ne[0]);
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  Tensor t = w;
  t.type = DType::kQ8_0, t.data = buf->data(), t.nbytes = buf->size(), t.owner = buf;
  q8.weights.Set(t);
  const TrainModel m = TrainModel::FromModel(q8);
  const std::vector<float> want = DequantizeAll(t);
  const float* got = m.Param("blk.0.ffn_up.weight");
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << i;
  // ToModel gives the same numbers back as f32 tensors.
  const Model back = m.ToModel();
  EXPECT_EQ(back.weights.Get("blk.0.ffn_up.weight").type, DType::kF32);
  EXPECT_EQ(DequantizeAll(back.weights.Get("blk.0.ffn_up.weight")), want);
  EXPECT_EQ(back.vocab.tokens, src.vocab.tokens);
}

TEST(TrainModel, ScratchInitIsDeterministicAndScaled) {
  const ModelConfig c = TinyConfig(false);
  const TrainModel a = TrainModel::FromScratch(c, Vocab{}, 7), b = TrainModel::FromScratch(c, Vocab{}, 7);
  const TrainModel other = TrainModel::FromScratch(c, Vocab{}, 8);
  EXPECT_EQ(a.params(), b.params());
  EXPECT_NE(a.params(), other.params());
  auto sd = [&](const std::string& name) {
    const ParamSlice& p = a.Slice(name);
    double s = 0;
    for (size_t i = 0; i < p.size; ++i) s += (double)a.params()[p.offset + i] * a.params()[p.offset + i];
    return std::sqrt(s / p.size);
  };
  // Sample standard deviations of ~300-element tensors: within 15 % of the target.
  EXPECT_NEAR(sd("token_embd.weight"), 0.02, 0.003);
  EXPECT_NEAR(sd("blk.0.ffn_gate.weight"), 0.02, 0.003);
  EXPECT_NEAR(sd("blk.1.ffn_down.weight"), 0.01, 0.0015);  // 0.02 / sqrt(2 · 2 layers)
  EXPECT_EQ(sd("blk.0.attn_norm.weight"), 1.0);
  EXPECT_FALSE(a.Slice("blk.0.attn_norm.weight").decay);
  EXPECT_TRUE(a.Slice("blk.0.attn_q.weight").decay);
}

class TrainGradient : public ::testing::TestWithParam<bool> {};

TEST_P(TrainGradient, OneBlockMatchesFiniteDifferences) {
  const ModelConfig c = TinyConfig(GetParam());
  TrainModel m = RoughModel(c, 3);
  const int64_t B = 2, T = 5, N = B * T;
  std::mt19937 gen(4);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(N * c.dim), r(N * c.dim), out(N * c.dim);
  for (float& v : x) v = d(gen);
  for (float& v : r) v = d(gen);
  std::vector<int32_t> pos(N);
  for (int64_t i = 0; i < N; ++i) pos[i] = (int32_t)(i % T);
  BlockActivations a;
  Workspace ws;
  const int layer = 1;
  BlockForward(m, layer, x.data(), B, T, a, out.data(), pos, 2);
  std::vector<float> dx = r;
  m.ZeroGrad();
  BlockBackward(m, layer, a, B, T, dx.data(), pos, ws, 2);
  auto f = [&] {
    BlockActivations tmp;
    BlockForward(m, layer, x.data(), B, T, tmp, out.data(), pos, 1);
    return Project(r, out.data());
  };
  double mag;
  f();
  Project(r, out.data(), &mag);
  const double noise = LossNoise(mag, c);
  ExpectGradient(f, x.data(), x.size(), dx.data(), noise, "dx");
  for (const ParamSlice& p : m.slices()) {
    const bool in_block = p.name.starts_with("blk.1.");
    for (size_t i = 0; i < p.size && !in_block; ++i) {
      ASSERT_EQ(m.grads()[p.offset + i], 0.0f) << p.name;  // other tensors untouched
    }
    if (in_block)
      ExpectGradient(f, m.params().data() + p.offset, p.size, m.grads().data() + p.offset, noise, p.name);
  }
}

TEST_P(TrainGradient, WholeModelLossMatchesFiniteDifferences) {
  const ModelConfig c = TinyConfig(GetParam());
  TrainModel m = RoughModel(c, 5);
  Batch b = RandomBatch(2, 6, c.vocab, 6);
  b.targets[4] = kIgnoreIndex;
  const double scored = (double)ScoredTargets(b);
  Workspace ws;
  m.ZeroGrad();
  const double loss = ForwardBackward(m, b, (float)(1.0 / scored), ws, 2) / scored;
  Workspace ws2;
  EXPECT_NEAR(Loss(m, b, ws2, 2) / scored, loss, 1e-12);  // the same forward pass
  auto f = [&] { return Loss(m, b, ws2, 1) / scored; };
  for (const ParamSlice& p : m.slices())
    ExpectGradient(f, m.params().data() + p.offset, p.size, m.grads().data() + p.offset, LossNoise(loss, c), p.name);
}

INSTANTIATE_TEST_SUITE_P(Families, TrainGradient, ::testing::Values(false, true), [](const auto& info) {
  return info.param ? std::string("Qwen2TiedNeoxBias") : std::string("LlamaUntied");
});

TEST(TrainModel, Stories260KGradientMatchesFiniteDifferencesOnSampledWeights) {
  const Model ref = LoadGgufModel(assets::kStoriesGguf);
  TrainModel m = TrainModel::FromModel(ref);
  Batch b = RandomBatch(1, 16, ref.config.vocab, 8);
  const double scored = (double)ScoredTargets(b);
  Workspace ws;
  m.ZeroGrad();
  const double loss = ForwardBackward(m, b, (float)(1.0 / scored), ws, 2) / scored;
  auto f = [&] { return Loss(m, b, ws, 1) / scored; };
  std::mt19937 gen(9);
  for (const ParamSlice& p : m.slices()) {
    std::vector<size_t> idx;
    // Embedding rows only matter for tokens in the batch: sample those rows.
    for (int k = 0; k < 4; ++k) {
      size_t i = std::uniform_int_distribution<size_t>(0, p.size - 1)(gen);
      if (p.name == "token_embd.weight") i = (size_t)b.inputs[k] * ref.config.dim + i % ref.config.dim;
      idx.push_back(i);
    }
    ExpectGradient(f, m.params().data() + p.offset, p.size, m.grads().data() + p.offset, LossNoise(loss, ref.config),
                   p.name, idx, 1e-2);
  }
}

}  // namespace
}  // namespace smelt::train
