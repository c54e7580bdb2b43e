#pragma once
// Perplexity and KL-divergence, computed the way llama.cpp's llama-perplexity does, so numbers
// are comparable with it:
//  - the whole text is tokenized once (BOS first when the vocabulary adds one);
//  - it is cut into floor(n_tokens / ctx) consecutive chunks of ctx tokens; each chunk's first
//    token is replaced by BOS (when the vocabulary adds one) and the chunk is evaluated from an
//    empty cache;
//  - only the second half is scored: logits at positions ctx/2 .. ctx-2 predict tokens
//    ctx/2+1 .. ctx-1 (ctx - 1 - ctx/2 tokens per chunk).
// --per-line instead scores each non-empty line on its own (BOS + line, every token after BOS).
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace smelt {

struct PplOptions {
  int ctx = 512;
  int threads = 1;
  int max_chunks = 0;       // 0: all
  bool per_line = false;
  KvType kv = KvType::kF32;  // KV cache type of the model scored (kld: the base keeps f32)
  // How the model scored feeds its products (runtime/session.h; kld: the base keeps kGgml).
  Activations activations = Activations::kGgml;
  std::function<void(int done, int total)> progress;  // optional
};

struct PplResult {
  int n_tokens = 0;        // tokens in the whole text (incl. BOS)
  int n_chunks = 0;        // chunks (or lines) evaluated
  int64_t n_scored = 0;    // predicted tokens scored
  double nll_sum = 0;      // sum of -log p
  double nll_sq_sum = 0;   // sum of (-log p)^2, for the standard error
  double seconds = 0;
  double mean_nll() const { return n_scored ? nll_sum / (double)n_scored : 0; }
  double ppl() const;
  double ppl_stderr() const;  // llama.cpp's estimate: ppl * sqrt(var(nll) / (n-1))
};

// The scoring plan: which token windows to evaluate and which positions of each count.
struct ScoringWindow {
  std::vector<int32_t> tokens;  // evaluated from an empty cache
  int first_scored = 0;         // logits at positions first_scored .. tokens.size()-2 are scored
};
std::vector<ScoringWindow> PlanScoring(const Model& model, const std::string& text, const PplOptions& opt,
                                       int* n_tokens_out);

// Runs the plan; `on_position(window, pos, logits)` sees each scored position's logits (vocab
// floats) and the token it must predict is window.tokens[pos+1].
using ScoredPositionFn = std::function<void(size_t window, int pos, std::span<const float> logits)>;
double EvaluateWindows(const Model& model, const std::vector<ScoringWindow>& windows, int threads,
                       const ScoredPositionFn& on_position, const std::function<void(int, int)>& progress,
                       KvType kv = KvType::kF32, Activations activations = Activations::kGgml);

PplResult Perplexity(const Model& model, const std::string& text, const PplOptions& opt);

// log-softmax of `logits` into out (same size); returns log-sum-exp.
double LogSoftmax(std::span<const float> logits, std::span<float> out);

}  // namespace smelt
