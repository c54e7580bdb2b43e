// GenerateSpeculative against Generate, its reference: with any draft (a close one, a useless
// one), any number of proposals per step and any sampler settings, the tokens, the stop reason
// and where the target session ends must be Generate's; only the speed may differ.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/types.h"
#include "io/gguf_model.h"
#include "io/tokenizer.h"
#include "model/synth.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "tiny_models.h"
#include "shared_assets.h"

namespace smelt {
namespace {


// stories260K with every matrix whose rows hold whole blocks in Q8_0: a draft that mostly agrees.
Model Q8Copy(const Model& m) {
  Model q = m;
  for (const Tensor& t : m.weights.all())
    if (t.n_dims == 2 && t.type == DType::kF32 && t.ne[0] % 32 == 0) q.weights.Set(tiny::EncodeTensor(t, DType::kQ8_0));
  return q;
}

// stories260K with its first and last blocks swapped: a draft that mostly disagrees.
Model SwappedBlocks(const Model& m) {
  Model s = m;
  const int last = m.config.n_layers - 1;
  for (const Tensor& t : m.weights.all()) {
    for (auto [from, to] : {std::pair{0, last}, std::pair{last, 0}}) {
      const std::string prefix = "blk." + std::to_string(from) + ".";
      if (t.name.rfind(prefix, 0) != 0) continue;
      Tensor moved = t;
      moved.name = "blk." + std::to_string(to) + "." + t.name.substr(prefix.size());
      s.weights.Set(std::move(moved));
    }
  }
  return s;
}

struct Outcome {
  GenerateStats st;
  int position = 0;
  SpeculativeStats spec;
};

Outcome Plain(const Model& m, std::span<const int32_t> prompt, SamplerOptions so, const GenerateOptions& go, int ctx,
          int stop_after = 0) {
  Tokenizer tok(m.vocab);
  Session s(m, {.context = ctx});
  Sampler sampler(so);
  int calls = 0;
  Outcome r;
  r.st = Generate(s, tok, sampler, prompt, go, [&](int32_t, const std::string&) { return ++calls != stop_after; });
  r.position = s.position();
  return r;
}

Outcome Speculative(const Model& m, const Model& d, std::span<const int32_t> prompt, SamplerOptions so,
                const GenerateOptions& go, int ctx, int k, int stop_after = 0) {
  Tokenizer tok(m.vocab);
  Session target(m, {.context = ctx}), draft(d, {.context = ctx});
  Sampler sampler(so);
  int calls = 0;
  Outcome r;
  r.st = GenerateSpeculative(target, draft, tok, sampler, prompt, go, {.draft_tokens = k},
                             [&](int32_t, const std::string&) { return ++calls != stop_after; }, &r.spec);
  r.position = target.position();
  return r;
}

void ExpectSame(const Outcome& want, const Outcome& got, const std::string& what) {
  EXPECT_EQ(got.st.tokens, want.st.tokens) << what;
  EXPECT_EQ(got.st.generated_tokens, want.st.generated_tokens) << what;
  EXPECT_EQ(got.st.stop, want.st.stop) << what;
  EXPECT_EQ(got.position, want.position) << what;
}

class SpeculativeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = LoadGgufModel(assets::kStoriesGguf);
    Tokenizer tok(target_.vocab);
    prompt_ = tok.Encode("Once upon a time, Lily", /*add_special=*/true);
  }
  GenerateOptions Opts(int n) const {
    return {.max_tokens = n, .stop_at_eos = true, .stop_tokens = {target_.vocab.bos}};
  }
  Model target_;
  std::vector<int32_t> prompt_;
};

TEST_F(SpeculativeTest, GreedyOutputIsGeneratesForCloseAndUselessDrafts) {
  const Model close = Q8Copy(target_), useless = SwappedBlocks(target_);
  const Outcome want = Plain(target_, prompt_, {}, Opts(80), 256);
  ASSERT_EQ(want.st.generated_tokens, 80);
  double close_rate = 0, useless_rate = 0;
  for (int k : {1, 4, 15}) {
    const Outcome a = Speculative(target_, close, prompt_, {}, Opts(80), 256, k);
    ExpectSame(want, a, "q8_0 draft, k=" + std::to_string(k));
    const Outcome b = Speculative(target_, useless, prompt_, {}, Opts(80), 256, k);
    ExpectSame(want, b, "swapped-blocks draft, k=" + std::to_string(k));
    EXPECT_GT(a.spec.steps, 0);
    EXPECT_LE(a.spec.accepted, a.spec.drafted);
    // Every step emits its kept proposals plus one token of the target's own; besides, the first
    // token and at most one plain step where the budget leaves no room for a proposal.
    EXPECT_LE(a.st.generated_tokens, 2 + a.spec.steps + a.spec.accepted);
    EXPECT_GE(a.st.generated_tokens, a.spec.steps + a.spec.accepted);
    if (k == 4) close_rate = a.spec.AcceptanceRate(), useless_rate = b.spec.AcceptanceRate();
  }
  std::printf("  acceptance at k=4: q8_0 draft %.2f, swapped-blocks draft %.2f\n", close_rate, useless_rate);
  EXPECT_GT(close_rate, useless_rate);
}

TEST_F(SpeculativeTest, SampledOutputIsGeneratesForTheSameSeed) {
  const Model close = Q8Copy(target_);
  for (uint64_t seed : {1u, 7u, 42u}) {
    const SamplerOptions so{.temperature = 0.9f, .top_k = 40, .top_p = 0.95f, .repeat_penalty = 1.1f, .seed = seed};
    const Outcome want = Plain(target_, prompt_, so, Opts(60), 256);
    ExpectSame(want, Speculative(target_, close, prompt_, so, Opts(60), 256, 4), "seed " + std::to_string(seed));
  }
}

TEST_F(SpeculativeTest, EndsWhereGenerateEnds) {
  const Model close = Q8Copy(target_);
  // Token budgets around the step size.
  for (int n : {0, 1, 2, 3, 5, 6, 11})
    ExpectSame(Plain(target_, prompt_, {}, Opts(n), 256), Speculative(target_, close, prompt_, {}, Opts(n), 256, 4),
               "max_tokens " + std::to_string(n));
  // A context that ends generation mid-step.
  const int ctx = (int)prompt_.size() + 9;
  const Outcome full = Plain(target_, prompt_, {}, Opts(50), ctx);
  EXPECT_EQ(full.st.stop, StopReason::kContextFull);
  ExpectSame(full, Speculative(target_, close, prompt_, {}, Opts(50), ctx, 4), "context");
  // A stop token in the middle of the output, and a callback that stops.
  const Outcome free_run = Plain(target_, prompt_, {}, Opts(40), 256);
  GenerateOptions stop = Opts(40);
  stop.stop_tokens.push_back(free_run.st.tokens[13]);
  const Outcome stopped = Plain(target_, prompt_, {}, stop, 256);
  EXPECT_EQ(stopped.st.stop, StopReason::kStopToken);
  ExpectSame(stopped, Speculative(target_, close, prompt_, {}, stop, 256, 4), "stop token");
  ExpectSame(Plain(target_, prompt_, {}, Opts(40), 256, 7), Speculative(target_, close, prompt_, {}, Opts(40), 256, 4, 7),
             "callback");
}

TEST_F(SpeculativeTest, ALoadedPromptStateContinuesAsGenerate) {
  const Model close = Q8Copy(target_);
  const std::string path = ::testing::TempDir() + "/speculative_prompt.smkv";
  const int n = (int)prompt_.size();
  {
    Session s(target_, {.context = 256});
    s.Eval(std::span(prompt_).first(n - 1));
    s.SaveState(path, std::span(prompt_).first(n - 1));
  }
  GenerateOptions cached = Opts(40);
  cached.prompt_cached = n - 1;
  const Outcome want = Plain(target_, prompt_, {}, Opts(40), 256);
  Tokenizer tok(target_.vocab);
  Sampler sampler({});
  Session loaded(target_, {.context = 256});
  EXPECT_EQ(loaded.LoadState(path), std::vector<int32_t>(prompt_.begin(), prompt_.end() - 1));
  const GenerateStats st = Generate(loaded, tok, sampler, prompt_, cached, nullptr);
  EXPECT_EQ(st.tokens, want.st.tokens);
  EXPECT_EQ(st.prompt_tokens, 1);
  EXPECT_EQ(loaded.position(), want.position);
  // Speculative: the draft evaluates the whole prompt, the target only its last token.
  Session target(target_, {.context = 256}), draft(close, {.context = 256});
  target.LoadState(path);
  Sampler sampler2({});
  EXPECT_EQ(GenerateSpeculative(target, draft, tok, sampler2, prompt_, cached, {}, nullptr).tokens, want.st.tokens);
  // Every prompt token cached leaves no logits to start from.
  cached.prompt_cached = n;
  Session again(target_, {.context = 256});
  EXPECT_THROW(Generate(again, tok, sampler, prompt_, cached, nullptr), Error);
  std::remove(path.c_str());
}

TEST_F(SpeculativeTest, RejectsWhatCannotWork) {
  Tokenizer tok(target_.vocab);
  Sampler sampler({});
  const Model other = SynthesizeModel({.dim = 32, .layers = 1, .heads = 4, .kv_heads = 2, .ff = 64, .vocab = 512});
  Session target(target_, {}), stranger(other, {}), draft(target_, {});
  EXPECT_THROW(GenerateSpeculative(target, stranger, tok, sampler, prompt_, Opts(4), {}, nullptr), Error);
  for (int k : {0, 16})
    EXPECT_THROW(GenerateSpeculative(target, draft, tok, sampler, prompt_, Opts(4), {.draft_tokens = k}, nullptr),
                 Error);
  draft.Eval(prompt_);
  EXPECT_THROW(GenerateSpeculative(target, draft, tok, sampler, prompt_, Opts(4), {}, nullptr), Error);
  EXPECT_THROW(GenerateSpeculative(target, draft, tok, sampler, std::span<const int32_t>(), Opts(4), {}, nullptr),
               Error);
}

}  // namespace
}  // namespace smelt
