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
};

enum class StopReason { kMaxTokens, kStopToken, kContextFull, kCallback };

struct GenerateStats {
  int prompt_tokens = 0;
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

}  // namespace smelt
