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

// Hands sampled tokens on: the stop checks, the token's text, the callback and the counts.
class Emitter {
 public:
  Emitter(const Tokenizer& tokenizer, const GenerateOptions& opt, const PieceCallback& on_piece,
          std::span<const int32_t> prompt, GenerateStats& st)
      : tokenizer_(tokenizer), opt_(opt), on_piece_(on_piece), st_(st), history_(prompt.begin(), prompt.end()) {
    const Vocab& vocab = tokenizer.vocab();
    strip_after_bos_ = opt.strip_space_after_bos && vocab.model == "llama" && vocab.add_space_prefix;
    st.prompt_tokens = (int)prompt.size() - opt.prompt_cached;
  }

  // Emits `token`; false when generation ends with it (a stop token, which is not emitted, or the
  // callback said stop), with st.stop set.
  bool Emit(int32_t token) {
    const Vocab& vocab = tokenizer_.vocab();
    const bool stop = (opt_.stop_at_eos && token == vocab.eos) ||
                      std::find(opt_.stop_tokens.begin(), opt_.stop_tokens.end(), token) != opt_.stop_tokens.end();
    if (stop) {
      st_.stop = StopReason::kStopToken;
      return false;
    }
    std::string piece = tokenizer_.TokenToPiece(token);
    if (strip_after_bos_ && history_.back() == vocab.bos && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    history_.push_back(token);
    st_.tokens.push_back(token);
    ++st_.generated_tokens;
    if (on_piece_ && !on_piece_(token, piece)) {
      st_.stop = StopReason::kCallback;
      return false;
    }
    return true;
  }

  // The prompt and every emitted token: what the repetition penalty sees.
  const std::vector<int32_t>& history() const { return history_; }

 private:
  const Tokenizer& tokenizer_;
  const GenerateOptions& opt_;
  const PieceCallback& on_piece_;
  GenerateStats& st_;
  std::vector<int32_t> history_;
  bool strip_after_bos_;
};

void CheckPrompt(std::span<const int32_t> prompt, const GenerateOptions& opt) {
  if (prompt.empty()) Fail("generate: the prompt has no tokens (start it with BOS for an empty text)");
  if (opt.prompt_cached < 0 || opt.prompt_cached >= (int64_t)prompt.size())
    Fail("generate: {} of the {} prompt tokens cached (at most {}: the last one must be evaluated)", opt.prompt_cached,
         prompt.size(), prompt.size() - 1);
}

}  // namespace

GenerateStats Generate(Session& session, const Tokenizer& tokenizer, Sampler& sampler, std::span<const int32_t> prompt,
                       const GenerateOptions& opt, const PieceCallback& on_piece) {
  CheckPrompt(prompt, opt);
  GenerateStats st;
  Emitter out(tokenizer, opt, on_piece, prompt, st);

  auto t0 = std::chrono::steady_clock::now();
  std::span<const float> logits = session.Eval(prompt.subspan(opt.prompt_cached));
  st.prompt_seconds = SecondsSince(t0);

  t0 = std::chrono::steady_clock::now();
  while (st.generated_tokens < opt.max_tokens) {
    if (!out.Emit(sampler.Sample(logits, out.history()))) break;
    if (st.generated_tokens == opt.max_tokens) break;  // nothing more to sample: no need to evaluate it
    if (session.position() >= session.context()) {
      st.stop = StopReason::kContextFull;
      break;
    }
    logits = session.Eval(std::span(&st.tokens.back(), 1));
  }
  st.decode_seconds = SecondsSince(t0);
  return st;
}

GenerateStats GenerateSpeculative(Session& target, Session& draft, const Tokenizer& tokenizer, Sampler& sampler,
                                  std::span<const int32_t> prompt, const GenerateOptions& opt,
                                  const SpeculativeOptions& spec, const PieceCallback& on_piece,
                                  SpeculativeStats* spec_stats) {
  CheckPrompt(prompt, opt);
  if (spec.draft_tokens < 1 || spec.draft_tokens > 15)
    Fail("speculative decoding: {} draft tokens per step (need 1 to 15)", spec.draft_tokens);
  const Model &tm = target.model(), &dm = draft.model();
  if (dm.vocab.tokens != tm.vocab.tokens)
    Fail("speculative decoding: draft {} ({} tokens) does not share the vocabulary of {} ({} tokens)", dm.source,
         dm.vocab.size(), tm.source, tm.vocab.size());
  // The draft evaluates the whole prompt (a loaded state holds only the target's cache).
  if (draft.position() != target.position() - opt.prompt_cached)
    Fail("speculative decoding: the draft is at position {}, the target at {} with {} prompt tokens cached",
         draft.position(), target.position(), opt.prompt_cached);
  GenerateStats st;
  SpeculativeStats ss;
  Emitter out(tokenizer, opt, on_piece, prompt, st);
  const std::vector<int32_t>& history = out.history();
  const int64_t V = tm.config.vocab;
  Sampler proposer(SamplerOptions{});  // greedy: the argmax, lowest id on ties

  auto t0 = std::chrono::steady_clock::now();
  std::span<const float> logits = target.Eval(prompt.subspan(opt.prompt_cached));
  draft.Eval(prompt);
  st.prompt_seconds = SecondsSince(t0);

  t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> verify;
  bool ended = opt.max_tokens <= 0 || !out.Emit(sampler.Sample(logits, history));
  while (!ended && st.generated_tokens < opt.max_tokens) {
    // The target holds every token but the last one emitted; so does the draft, or fewer.
    const int64_t base = target.position();
    if (base >= target.context()) {
      st.stop = StopReason::kContextFull;
      break;
    }
    const int k = (int)std::min<int64_t>({spec.draft_tokens, opt.max_tokens - st.generated_tokens - 1,
                                          target.context() - base - 1, draft.context() - base});
    if (k <= 0) {  // room for one plain step only
      logits = target.Eval(std::span(&history.back(), 1));
      ended = !out.Emit(sampler.Sample(logits, history));
      continue;
    }
    // The draft catches up with the history, then proposes k tokens greedily.
    verify.assign(1, history.back());
    std::span<const float> d = draft.Eval(std::span(history).subspan(draft.position()));
    for (int j = 0; j < k; ++j) {
      verify.push_back(proposer.Sample(d, {}));
      if (j + 1 < k) d = draft.Eval(std::span(&verify.back(), 1));
    }
    // The target scores the last token and the proposals in one pass; row j is its distribution
    // after verify[j]. Each position is sampled as Generate would; the first sample that differs
    // from the proposal (or the one after the last proposal) ends the step.
    std::span<const float> rows = target.Eval(verify, true);
    ++ss.steps;
    ss.drafted += k;
    int kept = 0;
    for (int j = 0; j <= k; ++j) {
      const int32_t token = sampler.Sample(rows.subspan(j * V, V), history);
      if (!out.Emit(token)) {
        ended = true;
        break;
      }
      if (j == k || token != verify[j + 1]) break;
      ++kept;
      if (st.generated_tokens == opt.max_tokens) break;
    }
    ss.accepted += kept;
    // Valid: everything up to the kept proposals; the token just emitted is not evaluated yet
    // (a stop token is not emitted: then the last kept token is the last one evaluated).
    int64_t valid = base + 1 + kept;
    if (st.stop != StopReason::kStopToken) valid = std::min<int64_t>(valid, (int64_t)history.size() - 1);
    target.Truncate(0, (int)valid);
    draft.Truncate(0, (int)std::min<int64_t>(valid, draft.position()));
  }
  st.decode_seconds = SecondsSince(t0);
  if (spec_stats) *spec_stats = ss;
  return st;
}

}  // namespace smelt
