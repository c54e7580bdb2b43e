#pragma once
// Text generation: run a prompt, then sample tokens one at a time, handing each token's text to
// a callback as soon as it exists (streaming), until a token budget, a stop token, the end of
// the context or the callback says stop.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace smelt {

class Session;
class Sampler;
class Tokenizer;

struct GenerateOptions {
  int max_tokens = 128;                   // tokens to sample at most
  bool stop_at_eos = true;                // end when the vocabulary's EOS is sampled
  std::vector<int32_t> stop_tokens = {};  // more ids that end generation (llama2.c run.c stops at BOS)
  // SentencePiece decoding drops the space a "▁word" piece starts with right after BOS (and
  // llama2.c run.c does the same); false prints pieces exactly as TokenToPiece gives them.
  bool strip_space_after_bos = true;
  // The session already holds the first prompt_cached tokens of the prompt (a loaded KV state,
  // Session::LoadState): only the rest is evaluated. At most prompt.size() - 1, since the
  // logits of the last prompt token are needed.
  int prompt_cached = 0;
};

enum class StopReason { kMaxTokens, kStopToken, kContextFull, kCallback };

struct GenerateStats {
  int prompt_tokens = 0;       // prompt tokens evaluated (without the cached ones)
  int generated_tokens = 0;   // tokens sampled and emitted (a stop token is not counted)
  double prompt_seconds = 0;  // evaluating the prompt
  double decode_seconds = 0;  // sampling and evaluating the generated tokens
  StopReason stop = StopReason::kMaxTokens;
  std::vector<int32_t> tokens;  // the generated ids

  double PromptTokensPerSecond() const { return prompt_seconds > 0 ? prompt_tokens / prompt_seconds : 0; }
  double DecodeTokensPerSecond() const { return decode_seconds > 0 ? generated_tokens / decode_seconds : 0; }
};

// Called once per generated token with the bytes it prints as (possibly empty, possibly part of
// a UTF-8 character split across byte tokens). Return false to stop.
using PieceCallback = std::function<bool(int32_t token, const std::string& piece)>;

// Evaluates `prompt` (non-empty) at the session's current position, then samples up to
// opt.max_tokens tokens, evaluating each one before sampling the next. The last sampled token
// is not evaluated (the session's position ends just before it). Throws Error for an empty
// prompt or a prompt that does not fit in the context.
GenerateStats Generate(Session& session, const Tokenizer& tokenizer, Sampler& sampler, std::span<const int32_t> prompt,
                       const GenerateOptions& opt, const PieceCallback& on_piece);

// Speculative decoding: a draft model proposes k tokens one at a time, the target verifies
// them in one forward pass of k + 1 tokens, and every token the target would have produced
// itself is kept.
struct SpeculativeOptions {
  int draft_tokens = 4;  // k, tokens proposed per step (1..15, so a verification is at most 16 tokens)
};

struct SpeculativeStats {
  int steps = 0;     // verification passes of the target
  int drafted = 0;   // tokens the draft proposed
  int accepted = 0;  // proposals the target kept
  double AcceptanceRate() const { return drafted > 0 ? (double)accepted / drafted : 0; }
};

// Generate with `draft` (a session on a model with the same vocabulary, token for token; with
// its own context, at least the target's) proposing tokens to `target`. The target samples each
// position with `sampler` exactly as Generate does (the same history, one draw per emitted
// token), and a proposal is kept only when it equals that sample; the draft proposes greedily
// (the argmax of its logits). So the output is Generate's, token for token and for any sampler
// settings, whenever the target's logits for a token do not depend on what else is in its
// batch (runtime/session.h: always for the quantized types, and up to 16 tokens for all).
// The draft evaluates the whole prompt, the target what opt.prompt_cached leaves: the draft must
// start that many positions behind the target (both at the same one without a cache). Throws
// Error for an empty prompt, a prompt that does not fit, different vocabularies or
// draft_tokens outside 1..15.
GenerateStats GenerateSpeculative(Session& target, Session& draft, const Tokenizer& tokenizer, Sampler& sampler,
                                  std::span<const int32_t> prompt, const GenerateOptions& opt,
                                  const SpeculativeOptions& spec, const PieceCallback& on_piece,
                                  SpeculativeStats* spec_stats = nullptr);

}  // namespace smelt
