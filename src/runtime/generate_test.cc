// Generation end to end. Golden: llama2.c run.c's greedy output for stories260K (`-t 0.0 -n 256`,
// shared/assets/stories260K/greedy_t0_n256.expected.txt) reproduced byte for byte from the
// llama2.c checkpoint and from the GGUF conversion, and the documented "Timmy" sample of
// `-t 1.0 -p 0.9 -s 133742` with the llama2.c-compatible sampler. Mechanics (stop reasons,
// callback, context) on a small synthetic model.
#include "runtime/generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/gguf_model.h"
#include "io/llama2c.h"
#include "io/tokenizer.h"
#include "model/synth.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace smelt {
namespace {

const std::string kAssets = std::string(SMELT_SHARED_DIR) + "/assets/stories260K/";

// run.c's generate(): BOS, then up to `steps` positions; stops when BOS is sampled (EOS is not
// a stop); prints every piece through safe_printf (single bytes that are neither printable nor
// space are dropped), then one newline.
std::string RunCStdout(const Model& model, SamplerOptions sampling, int steps = 256) {
  Tokenizer tok(model.vocab);
  Session session(model, {});
  Sampler sampler(sampling);
  const int32_t bos = model.vocab.bos;
  std::string out;
  GenerateOptions opt{.max_tokens = steps, .stop_at_eos = false, .stop_tokens = {bos}};
  const std::vector<int32_t> prompt = {bos};
  Generate(session, tok, sampler, prompt, opt, [&](int32_t, const std::string& piece) {
    if (piece.size() == 1 && !std::isprint((unsigned char)piece[0]) && !std::isspace((unsigned char)piece[0]))
      return true;
    out += piece;
    return true;
  });
  return out + "\n";
}

TEST(Generate, Stories260KGreedyMatchesLlama2cFromCheckpoint) {
  const Model m = LoadLlama2cModel(kAssets + "stories260K.bin", kAssets + "tok512.bin");
  EXPECT_EQ(RunCStdout(m, {}), ReadFileToString(kAssets + "greedy_t0_n256.expected.txt"));
}

TEST(Generate, Stories260KGreedyMatchesLlama2cFromGguf) {
  const Model m = LoadGgufModel(kAssets + "stories260K.gguf");
  EXPECT_EQ(RunCStdout(m, {}), ReadFileToString(kAssets + "greedy_t0_n256.expected.txt"));
}

TEST(Generate, Stories260KTopPSampleMatchesLlama2c) {
  // llama2.c doc/stories260K.md: `./run stories260K.bin -z tok512.bin -t 1.0 -p 0.9 -s 133742`.
  const std::string want =
      "Once upon a time, there was a little boy named Timmy. Timmy loved to play with his toys and eat sandwiches. "
      "One day, Timmy's mom told him it was time to rest for a while. Timmy's friend Billy came over and took him a "
      "down.\n"
      "Timmy's mom saw that Timmy was sad, but Timmy said, \"I didn't understand what is it! We need to find some "
      "leafs.\" Timmy thought about it and took a deep breath on a spoon. He hoped it was important to be kind and "
      "continued to find its image next time.\n"
      "After they finished getting, Timmy's dad came up to his house and promised to help Timmy.\n";
  const Model m = LoadLlama2cModel(kAssets + "stories260K.bin", kAssets + "tok512.bin");
  EXPECT_EQ(RunCStdout(m, {.temperature = 1.0f, .top_p = 0.9f, .seed = 133742, .llama2c_compat = true}), want);
}

Model SmallModel() {
  return SynthesizeModel({.dim = 32, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 64, .vocab = 300, .context = 40});
}

TEST(Generate, GreedyEqualsAManualArgmaxLoopAndStreamsPieces) {
  const Model m = SmallModel();
  Tokenizer tok(m.vocab);
  const std::vector<int32_t> prompt = {1, 300 - 5, 280, 270};
  // The manual loop: argmax, evaluate, repeat.
  std::vector<int32_t> want;
  {
    Session s(m, {});
    auto logits = s.Eval(prompt);
    for (int i = 0; i < 12; ++i) {
      int32_t best = 0;
      for (int32_t v = 1; v < (int32_t)logits.size(); ++v)
        if (logits[v] > logits[best]) best = v;
      want.push_back(best);
      logits = s.Eval(std::span(&best, 1));
    }
  }
  Session s(m, {});
  Sampler greedy({});
  std::vector<int32_t> streamed;
  std::string text;
  const auto st = Generate(s, tok, greedy, prompt, {.max_tokens = 12, .stop_at_eos = false},
                           [&](int32_t t, const std::string& piece) {
                             streamed.push_back(t);
                             text += piece;
                             return true;
                           });
  EXPECT_EQ(st.tokens, want);
  EXPECT_EQ(streamed, want);
  EXPECT_EQ(st.prompt_tokens, 4);
  EXPECT_EQ(st.generated_tokens, 12);
  EXPECT_EQ(st.stop, StopReason::kMaxTokens);
  EXPECT_EQ(s.position(), 4 + 11);  // the last sampled token is not evaluated
  std::string pieces;
  for (int32_t t : want) pieces += tok.TokenToPiece(t);
  EXPECT_EQ(text, pieces);
  EXPECT_GE(st.decode_seconds, 0.0);
}

TEST(Generate, StopsAtStopTokenCallbackAndContext) {
  const Model m = SmallModel();
  Tokenizer tok(m.vocab);
  const std::vector<int32_t> prompt = {1, 290};
  std::vector<int32_t> free_run;
  {
    Session s(m, {});
    Sampler sampler({.temperature = 1.0f, .seed = 5});
    free_run = Generate(s, tok, sampler, prompt, {.max_tokens = 30, .stop_at_eos = false}, nullptr).tokens;
    ASSERT_EQ(free_run.size(), 30u);
  }
  {  // the same stream, cut where its 6th token appears first
    Session s(m, {});
    Sampler sampler({.temperature = 1.0f, .seed = 5});
    const int32_t stop = free_run[5];
    const auto first = std::find(free_run.begin(), free_run.end(), stop) - free_run.begin();
    const auto st =
        Generate(s, tok, sampler, prompt, {.max_tokens = 30, .stop_at_eos = false, .stop_tokens = {stop}}, nullptr);
    EXPECT_EQ(st.stop, StopReason::kStopToken);
    EXPECT_EQ(st.tokens, std::vector<int32_t>(free_run.begin(), free_run.begin() + first));
  }
  {
    Session s(m, {});
    Sampler sampler({.temperature = 1.0f, .seed = 5});
    int calls = 0;
    const auto st = Generate(s, tok, sampler, prompt, {.max_tokens = 30, .stop_at_eos = false},
                             [&](int32_t, const std::string&) { return ++calls < 3; });
    EXPECT_EQ(st.stop, StopReason::kCallback);
    EXPECT_EQ(st.generated_tokens, 3);
  }
  {  // context 40: 2 prompt positions + 38 evaluated samples, the 39th sample ends it
    Session s(m, {});
    Sampler sampler({.temperature = 1.0f, .seed = 5});
    const auto st = Generate(s, tok, sampler, prompt, {.max_tokens = 100, .stop_at_eos = false}, nullptr);
    EXPECT_EQ(st.stop, StopReason::kContextFull);
    EXPECT_EQ(st.generated_tokens, 39);
    EXPECT_EQ(s.position(), 40);
  }
  Session s(m, {});
  Sampler sampler({});
  EXPECT_THROW(Generate(s, tok, sampler, std::span<const int32_t>(), {}, nullptr), Error);
}

}  // namespace
}  // namespace smelt
