#pragma once
// KL-divergence of a model to a base model over the same scored positions as perplexity
// (llama-perplexity --kl-divergence): KL(P_base || P_model) per position, summarised as mean ±
// standard error, median, p99, p99.9, max; the share of positions where both pick the same top
// token; Δp = p_model(actual next token) - p_base(actual next token).
//
// The base's log-probabilities can be saved once to a file and reused: a window-by-window stream
// of uint16-quantized log-probs (per position: f32 lo, f32 step, n_vocab u16), with the token
// windows stored up front so a mismatched text is detected.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eval/perplexity.h"

namespace smelt {

struct KldOptions {
  PplOptions ppl;                 // ctx, threads, per_line, max_chunks, progress
  std::string base_logits_in;     // read base log-probs from this file instead of running a base model
  std::string base_logits_out;    // also save the base log-probs here (needs a base model)
};

struct KldResult {
  int64_t n = 0;
  double kld_mean = 0, kld_stderr = 0, kld_median = 0, kld_p99 = 0, kld_p999 = 0, kld_max = 0, kld_min = 0;
  double same_top = 0, same_top_stderr = 0;  // fraction in [0, 1]
  double dp_mean = 0, dp_rms = 0, dp_p01 = 0, dp_p99 = 0;  // Δp in probability units
  double ppl_base = 0, ppl_model = 0, ln_ppl_ratio = 0;
  int n_chunks = 0;
  double seconds = 0;
};

// base may be null when opt.base_logits_in is set.
KldResult KlDivergence(const Model& model, const Model* base, const std::string& text, const KldOptions& opt);

// Summary of a list of per-position values (exposed for tests).
double Quantile(std::vector<double> v, double q);

}  // namespace smelt
