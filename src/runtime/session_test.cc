// Session (KV cache + LlamaForward) against the naive whole-sequence forward pass on tiny random
// models: token-by-token decoding, batched prompts, Qwen2 biases + NeoX RoPE, tied embeddings,
// quantized weights, RoPE frequency scaling; threads must not change a bit.
#include "runtime/session.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "formats/types.h"
#include "model/llama.h"
#include "model/llama_naive.h"
#include "tiny_models.h"

namespace smelt {
namespace {

std::vector<int32_t> SomeTokens(int n, int vocab, uint32_t seed = 7) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (int32_t)((seed + 31u * i * i + 7u * i) % vocab);
  return t;
}

// Max |a - b| over all logits, printed; fails above `tol`.
void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_diff = std::max(max_diff, (double)std::abs(got[i] - want[i]));
    max_abs = std::max(max_abs, (double)std::abs(want[i]));
  }
  std::printf("  %s: max |logit diff| %.3g (max |logit| %.3g)\n", what, max_diff, max_abs);
  EXPECT_LT(max_diff, tol) << what;
  EXPECT_GT(max_abs, 1.0) << "logits too flat to be a meaningful check";
}

// Logits of every position, feeding one token at a time through the KV cache.
std::vector<float> Incremental(const Model& m, const std::vector<int32_t>& tokens, int threads = 1,
                               Activations act = Activations::kExact) {
  Session s(m, {.threads = threads, .activations = act});
  std::vector<float> all;
  for (int32_t t : tokens) {
    auto l = s.Eval(std::span(&t, 1));
    EXPECT_EQ(l.size(), (size_t)m.config.vocab);
    all.insert(all.end(), l.begin(), l.end());
  }
  EXPECT_EQ(s.position(), (int)tokens.size());
  return all;
}

std::vector<float> Batched(const Model& m, const std::vector<int32_t>& tokens, int threads = 1,
                           Activations act = Activations::kExact) {
  Session s(m, {.threads = threads, .activations = act});
  auto l = s.Eval(tokens, true);
  return std::vector<float>(l.begin(), l.end());
}

void CheckAgainstNaive(const Model& m, const char* what) {
  const auto tokens = SomeTokens(20, m.config.vocab);
  const std::vector<float> naive = NaiveLlamaLogits(m, tokens);
  ExpectClose(Incremental(m, tokens), naive, 1e-4, what);
  ExpectClose(Batched(m, tokens), naive, 1e-4, what);
}

TEST(Session, KvCacheDecodingMatchesNaiveForward) { CheckAgainstNaive(tiny::TinyLlama({}), "llama"); }

TEST(Session, Qwen2BiasesAndNeoxMatchNaiveForward) {
  CheckAgainstNaive(tiny::TinyLlama({.qwen2 = true, .seed = 2}), "qwen2");
}

TEST(Session, TiedEmbeddingsMatchNaiveForward) {
  CheckAgainstNaive(tiny::TinyLlama({.tied = true, .seed = 3}), "tied");
}

TEST(Session, QuantizedWeightsMatchNaiveForwardOnTheSameWeights) {
  Model m = tiny::TinyLlama({.seed = 4});
  std::vector<Tensor> encoded;
  for (const Tensor& t : m.weights.all())
    if (t.n_dims == 2)
      encoded.push_back(tiny::EncodeTensor(t, t.name == "token_embd.weight" ? DType::kQ4_0 : DType::kQ8_0));
  for (Tensor& t : encoded) m.weights.Set(std::move(t));
  CheckAgainstNaive(m, "q8_0/q4_0");
  // Rounding the activations as llama.cpp does (to Q8_0 here) moves the logits by a few
  // activation steps only, and the same way whether tokens come one by one or together.
  const auto tokens = SomeTokens(20, m.config.vocab);
  const auto rounded = Incremental(m, tokens, 1, Activations::kGgml);
  ExpectClose(Batched(m, tokens, 1, Activations::kGgml), rounded, 1e-4, "q8_0/q4_0 rounded, batched");
  // The rounding is applied (the logits move) but stays small: a tiny model of dim 32 has one
  // Q8_0 block per row, the coarsest case, and moves by ~2 % of the largest logit.
  const auto naive = NaiveLlamaLogits(m, tokens);
  double moved = 0, largest = 0;
  for (size_t i = 0; i < naive.size(); ++i) {
    moved = std::max(moved, (double)std::fabs(rounded[i] - naive[i]));
    largest = std::max(largest, (double)std::fabs(naive[i]));
  }
  EXPECT_GT(moved, 1e-3);
  EXPECT_LT(moved, 0.05 * largest);
}

TEST(Session, RopeScalingMatchesNaiveForward) {
  Model linear = tiny::TinyLlama({.seed = 5});
  linear.config.rope_scaling = {.type = "linear", .factor = 4.0f};
  CheckAgainstNaive(linear, "linear rope scaling");

  Model llama3 = tiny::TinyLlama({.seed = 6});
  llama3.config.rope_theta = 500000.0f;
  llama3.config.rope_scaling = {
      .type = "llama3", .factor = 8.0f, .low_freq_factor = 1.0f, .high_freq_factor = 4.0f, .original_context = 64};
  CheckAgainstNaive(llama3, "llama3 rope scaling");

  Model factors = tiny::TinyLlama({.seed = 7});
  const int half = factors.config.rope_dim / 2;
  std::vector<float> f(half);
  for (int i = 0; i < half; ++i) f[i] = 1.0f + 3.0f * i;
  factors.weights.Add(MakeF32Tensor("rope_freqs.weight", {half}, f));
  CheckAgainstNaive(factors, "rope_freqs.weight");
}

TEST(Session, ThreadsDoNotChangeResults) {
  // Large enough that products and attention really run on two threads (small ones stay on one).
  const Model m =
      tiny::TinyLlama({.dim = 256, .heads = 4, .kv_heads = 2, .ff = 512, .vocab = 300, .qwen2 = true, .seed = 8});
  const auto tokens = SomeTokens(17, m.config.vocab);
  EXPECT_EQ(Incremental(m, tokens, 1), Incremental(m, tokens, 2));
  EXPECT_EQ(Batched(m, tokens, 1), Batched(m, tokens, 2));
}

// A pass resumed at block l from the block outputs an observer kept gives the full pass's logits
// bit for bit, for every l, also past one internal batch and on a quantized model.
TEST(Session, ResumingAtABlockGivesTheFullPassBits) {
  struct Keep : ForwardObserver {
    std::vector<std::vector<float>> out;  // [block] -> (tokens, dim)
    int64_t dim = 0;
    void OnBlockOutput(int layer, const float* x, int64_t T) override {
      if ((int)out.size() <= layer) out.resize(layer + 1);
      out[layer].insert(out[layer].end(), x, x + T * dim);
    }
  };
  for (DType type : {DType::kF32, DType::kQ8_0}) {
    Model m = tiny::TinyLlama({.dim = 64, .layers = 3, .heads = 4, .kv_heads = 2, .ff = 64, .seed = 12});
    if (type != DType::kF32)
      for (const Tensor& t : std::vector<Tensor>(m.weights.all()))
        if (t.n_dims == 2) m.weights.Set(tiny::EncodeTensor(t, type));
    m.config.context = 1100;
    for (size_t n : {size_t{9}, size_t{1050}}) {
      const auto tokens = SomeTokens(n, m.config.vocab);
      for (Activations act : {Activations::kExact, Activations::kGgml}) {
        Session full(m, {.activations = act});
        const std::span<const float> z = full.Eval(tokens, true);
        const std::vector<float> want(z.begin(), z.end());
        Keep keep;
        keep.dim = m.config.dim;
        Session observed(m, {.activations = act});
        observed.set_observer(&keep);
        observed.Eval(tokens, true);
        for (int l = 1; l < m.config.n_layers; ++l) {
          Session resumed(m, {.activations = act});
          const std::span<const float> r = resumed.Eval(tokens, true, ResumeAt{l, keep.out[l - 1].data()});
          EXPECT_EQ(std::vector<float>(r.begin(), r.end()), want) << DTypeName(type) << " n " << n << " block " << l;
        }
      }
    }
  }
}

TEST(Session, LongPromptIsSplitIntoBatchesCorrectly) {
  Model m = tiny::TinyLlama({.dim = 16, .layers = 1, .heads = 2, .kv_heads = 1, .ff = 16, .seed = 9});
  m.config.context = 1200;
  const auto tokens = SomeTokens(1100, m.config.vocab);  // more than one internal batch
  const std::vector<float> all = Batched(m, tokens);
  // The same tokens fed in uneven pieces, last-position logits only.
  Session s(m, {});
  size_t done = 0;
  for (size_t piece : {1u, 300u, 9u, 600u, 190u}) {
    auto l = s.Eval(std::span(tokens).subspan(done, piece));
    done += piece;
    std::vector<float> got(l.begin(), l.end());
    std::vector<float> want(all.begin() + (done - 1) * m.config.vocab, all.begin() + done * m.config.vocab);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << "after " << done;
  }
  EXPECT_EQ(done, tokens.size());
}

TEST(Session, ResetStartsOver) {
  const Model m = tiny::TinyLlama({.seed = 10});
  const auto tokens = SomeTokens(6, m.config.vocab);
  Session s(m, {});
  auto first = s.Eval(tokens);
  const std::vector<float> a(first.begin(), first.end());
  s.Eval(SomeTokens(3, m.config.vocab, 99));
  s.Reset();
  EXPECT_EQ(s.position(), 0);
  auto again = s.Eval(tokens);
  EXPECT_EQ(a, std::vector<float>(again.begin(), again.end()));
}

TEST(Session, RejectsBadInputWithoutChangingState) {
  const Model m = tiny::TinyLlama({.seed = 11});
  Session s(m, {.context = 8});
  EXPECT_EQ(s.context(), 8);
  EXPECT_EQ(s.vocab(), 50);
  const std::vector<int32_t> bad = {1, 50};
  EXPECT_THROW(s.Eval(bad), Error);
  const std::vector<int32_t> negative = {-1};
  EXPECT_THROW(s.Eval(negative), Error);
  EXPECT_THROW(s.Eval(std::span<const int32_t>()), Error);
  EXPECT_EQ(s.position(), 0);
  s.Eval(SomeTokens(6, 50));
  try {
    s.Eval(SomeTokens(3, 50));
    ADD_FAILURE() << "no error past the context";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s.position(), 6);
  EXPECT_NO_THROW(s.Eval(SomeTokens(2, 50)));
  EXPECT_EQ(s.position(), 8);
}

std::string ConstructionError(const Model& m) {
  try {
    Session s(m, {});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Session, ValidatesWeightsAtConstruction) {
  Model missing = tiny::TinyLlama({});
  Weights w;
  for (const Tensor& t : missing.weights.all())
    if (t.name != "blk.1.ffn_up.weight") w.Add(t);
  missing.weights = w;
  EXPECT_EQ(ConstructionError(missing), "tiny: missing tensor blk.1.ffn_up.weight");

  Model shape = tiny::TinyLlama({});
  shape.weights.Set(MakeF32Tensor("blk.0.attn_k.weight", {32, 32}, std::vector<float>(32 * 32)));
  EXPECT_EQ(ConstructionError(shape), "tiny: tensor blk.0.attn_k.weight: shape [32, 32], expected [32, 16]");

  Model bias = tiny::TinyLlama({});
  bias.config.qkv_bias = true;  // the config promises biases the weights do not have
  EXPECT_EQ(ConstructionError(bias), "tiny: missing tensor blk.0.attn_q.bias");

  Model type = tiny::TinyLlama({});
  Tensor ints = type.weights.Get("output.weight");
  ints.type = DType::kI32;
  type.weights.Set(ints);
  EXPECT_NE(ConstructionError(type).find("tiny: tensor output.weight: type"), std::string::npos);

  Model arch = tiny::TinyLlama({});
  arch.config.arch = "mamba";
  EXPECT_NE(ConstructionError(arch).find("architecture 'mamba'"), std::string::npos);

  Model config = tiny::TinyLlama({});
  config.config.n_kv_heads = 3;
  EXPECT_NE(ConstructionError(config).find("tiny: head count 4 is not a multiple"), std::string::npos);
}

}  // namespace
}  // namespace smelt

namespace smelt {
namespace {

// Records what a forward pass reports.
struct Recorder : ForwardObserver {
  std::vector<std::pair<int, std::string>> inputs;  // (layer, weight name) in call order
  std::vector<std::vector<float>> head_inputs;      // rows seen by the output head
  std::vector<float> last_block;                    // residual after the last block
  int blocks = 0;
  void OnLinearInput(int layer, const Tensor& w, const float* x, int64_t T) override {
    inputs.emplace_back(layer, w.name);
    if (w.name == "output.weight") head_inputs.emplace_back(x, x + T * w.ne[0]);
  }
  void OnBlockOutput(int layer, const float* x, int64_t T) override {
    ++blocks;
    last_block.assign(x, x + T * 32);
  }
};

// The observer sees every projection in order, and what it reports is what the pass used: the
// output head's reported input, multiplied by output.weight naively, gives the logits.
TEST(Session, ObserverSeesEveryProjectionInput) {
  const Model m = tiny::TinyLlama({.seed = 9});
  Session s(m, {.activations = Activations::kExact});
  Recorder r;
  s.set_observer(&r);
  const std::vector<int32_t> tokens = {1, 5, 7};
  const auto logits = s.Eval(tokens, true);
  const int L = m.config.n_layers;
  ASSERT_EQ(r.inputs.size(), (size_t)(7 * L + 1));
  EXPECT_EQ(r.inputs[0], std::make_pair(0, std::string("blk.0.attn_q.weight")));
  EXPECT_EQ(r.inputs[6], std::make_pair(0, std::string("blk.0.ffn_down.weight")));
  EXPECT_EQ(r.inputs.back(), std::make_pair(L, std::string("output.weight")));
  EXPECT_EQ(r.blocks, L);
  ASSERT_EQ(r.head_inputs.size(), 1u);
  const std::vector<float> w = DequantizeAll(m.weights.Get("output.weight"));
  const int C = m.config.dim, V = m.config.vocab;
  for (int t = 0; t < 3; ++t)
    for (int v = 0; v < V; ++v) {
      double d = 0;
      for (int c = 0; c < C; ++c) d += (double)w[v * C + c] * r.head_inputs[0][t * C + c];
      ASSERT_NEAR(d, logits[t * V + v], 1e-4);
    }
  // The head's input is the normed last residual: same direction.
  double dot = 0, n1 = 0, n2 = 0;
  for (int c = 0; c < C; ++c) {
    const double a = r.last_block[2 * C + c], b = r.head_inputs[0][2 * C + c];
    dot += a * b, n1 += a * a, n2 += b * b;
  }
  EXPECT_GT(dot / std::sqrt(n1 * n2), 0.5);
  s.set_observer(nullptr);
  s.Eval(std::vector<int32_t>{3});
  EXPECT_EQ(r.blocks, L);
}

}  // namespace
}  // namespace smelt
