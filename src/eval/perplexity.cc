#include "eval/perplexity.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "io/tokenizer.h"
#include "runtime/session.h"

namespace smelt {

double PplResult::ppl() const { return std::exp(mean_nll()); }

double PplResult::ppl_stderr() const {
  if (n_scored < 2) return 0;
  const double n = (double)n_scored;
  const double mean = nll_sum / n;
  const double var = nll_sq_sum / n - mean * mean;
  return ppl() * std::sqrt(std::max(var, 0.0) / (n - 1));
}

double LogSoftmax(std::span<const float> logits, std::span<float> out) {
  float mx = -INFINITY;
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (float v : logits) sum += std::exp((double)v - mx);
  const double lse = (double)mx + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = (float)((double)logits[i] - lse);
  return lse;
}

std::vector<ScoringWindow> PlanScoring(const Model& model, const std::string& text, const PplOptions& opt,
                                       int* n_tokens_out) {
  Tokenizer tok(model.vocab);
  const bool bos = model.vocab.add_bos && model.vocab.bos >= 0;
  std::vector<ScoringWindow> windows;
  int n_tokens = 0;
  if (opt.per_line) {
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + start, end - start);
      start = end + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      ScoringWindow w;
      w.tokens = tok.Encode(line, /*add_special=*/true);
      n_tokens += (int)w.tokens.size();
      if ((int)w.tokens.size() > opt.ctx) w.tokens.resize(opt.ctx);
      if (w.tokens.size() < 2) continue;
      w.first_scored = 0;
      windows.push_back(std::move(w));
      if (opt.max_chunks > 0 && (int)windows.size() >= opt.max_chunks) break;
    }
  } else {
    if (opt.ctx < 4) Fail("--ctx {} is too small (at least 4)", opt.ctx);
    std::vector<int32_t> all = tok.Encode(text, /*add_special=*/true);
    n_tokens = (int)all.size();
    int n_chunks = n_tokens / opt.ctx;
    if (n_chunks == 0)
      Fail("text has {} tokens, fewer than one window of --ctx {}; use a longer text or a smaller --ctx", n_tokens,
           opt.ctx);
    if (opt.max_chunks > 0) n_chunks = std::min(n_chunks, opt.max_chunks);
    for (int c = 0; c < n_chunks; ++c) {
      ScoringWindow w;
      w.tokens.assign(all.begin() + (int64_t)c * opt.ctx, all.begin() + (int64_t)(c + 1) * opt.ctx);
      if (bos) w.tokens[0] = model.vocab.bos;
      w.first_scored = opt.ctx / 2;
      windows.push_back(std::move(w));
    }
  }
  if (n_tokens_out) *n_tokens_out = n_tokens;
  return windows;
}

double EvaluateWindows(const Model& model, const std::vector<ScoringWindow>& windows, int threads,
                       const ScoredPositionFn& on_position, const std::function<void(int, int)>& progress,
                       KvType kv, Activations activations) {
  int ctx = 0;
  for (const auto& w : windows) ctx = std::max(ctx, (int)w.tokens.size());
  SessionOptions so;
  so.threads = threads;
  so.context = std::max(ctx, 1);
  so.kv = kv;
  so.activations = activations;
  Session session(model, so);
  const int vocab = session.vocab();
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t wi = 0; wi < windows.size(); ++wi) {
    const auto& w = windows[wi];
    session.Reset();
    std::span<const float> logits = session.Eval(w.tokens, /*all_logits=*/true);
    for (int pos = w.first_scored; pos + 1 < (int)w.tokens.size(); ++pos)
      on_position(wi, pos, logits.subspan((size_t)pos * vocab, vocab));
    if (progress) progress((int)wi + 1, (int)windows.size());
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

PplResult Perplexity(const Model& model, const std::string& text, const PplOptions& opt) {
  PplResult r;
  std::vector<ScoringWindow> windows = PlanScoring(model, text, opt, &r.n_tokens);
  if (windows.empty()) Fail("text has no line long enough to score");
  r.n_chunks = (int)windows.size();
  std::vector<float> lp;
  r.seconds = EvaluateWindows(
      model, windows, opt.threads,
      [&](size_t wi, int pos, std::span<const float> logits) {
        lp.resize(logits.size());
        LogSoftmax(logits, lp);
        const int32_t next = windows[wi].tokens[pos + 1];
        const double nll = -(double)lp[next];
        r.nll_sum += nll;
        r.nll_sq_sum += nll * nll;
        ++r.n_scored;
      },
      opt.progress, opt.kv, opt.activations);
  return r;
}

}  // namespace smelt
