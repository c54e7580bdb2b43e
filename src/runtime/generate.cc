#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "io/tokenizer.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace smelt {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

GenerateStats Generate(Session& session, const Tokenizer& tokenizer, Sampler& sampler, std::span<const int32_t> prompt,
                       const GenerateOptions& opt, const PieceCallback& on_piece) {
  if (prompt.empty()) Fail("generate: the prompt has no tokens (start it with BOS for an empty text)");
  const Vocab& vocab = tokenizer.vocab();
  const bool strip_after_bos = opt.strip_space_after_bos && vocab.model == "llama" && vocab.add_space_prefix;

  GenerateStats st;
  st.prompt_tokens = (int)prompt.size();
  std::vector<int32_t> history(prompt.begin(), prompt.end());  // what the repetition penalty sees

  auto t0 = std::chrono::steady_clock::now();
  std::span<const float> logits = session.Eval(prompt);
  st.prompt_seconds = SecondsSince(t0);

  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < opt.max_tokens; ++i) {
    const int32_t token = sampler.Sample(logits, history);
    const bool stop = (opt.stop_at_eos && token == vocab.eos) ||
                      std::find(opt.stop_tokens.begin(), opt.stop_tokens.end(), token) != opt.stop_tokens.end();
    if (stop) {
      st.stop = StopReason::kStopToken;
      break;
    }
    std::string piece = tokenizer.TokenToPiece(token);
    if (strip_after_bos && history.back() == vocab.bos && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    history.push_back(token);
    st.tokens.push_back(token);
    ++st.generated_tokens;
    if (on_piece && !on_piece(token, piece)) {
      st.stop = StopReason::kCallback;
      break;
    }
    if (i + 1 == opt.max_tokens) break;  // nothing more to sample: no need to evaluate it
    if (session.position() >= session.context()) {
      st.stop = StopReason::kContextFull;
      break;
    }
    logits = session.Eval(std::span(&st.tokens.back(), 1));
  }
  st.decode_seconds = SecondsSince(t0);
  return st;
}

}  // namespace smelt
