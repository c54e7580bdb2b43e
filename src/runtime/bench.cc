#include "runtime/bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
#include <map>
#include <random>

#include "core/cpu.h"
#include "core/error.h"
#include "formats/types.h"
#include "runtime/session.h"

namespace smelt {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// "260K" / "220M" / "1.1B", as llama-bench sizes a model.
std::string ParamsLabel(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.1f}B", (double)n / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.0f}M", (double)n / 1e6);
  return fmt::format("{:.0f}K", (double)n / 1e3);
}

// The type most matrices have (ties: the larger share of bytes), what llama.cpp's ftype names.
std::string MainType(const Model& m) {
  std::map<DType, std::pair<int, uint64_t>> seen;
  for (const Tensor& t : m.weights.all()) {
    if (t.n_dims != 2) continue;
    auto& s = seen[t.type];
    ++s.first;
    s.second += t.nbytes;
  }
  if (seen.empty()) return "f32";
  auto best = std::max_element(seen.begin(), seen.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  std::string name(DTypeName(best->first));
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return (char)std::toupper(c); });
  return name;
}

// Back to `depth` positions in each of the first `seqs` sequences (Prefill put them there;
// depth 0: an empty cache).
void Rewind(Session& s, int depth, int seqs) {
  if (depth == 0) return s.Reset();
  for (int q = 0; q < seqs; ++q) s.Truncate(q, depth);
}

// Sequences 0 .. seqs-1 each given the first `depth` bench tokens, untimed, in batches of at most
// 512 entries (Session::Decode), so that a test at depth d reads a cache of d positions.
void Prefill(Session& s, std::span<const int32_t> tokens, int depth, int seqs) {
  s.Reset();
  std::vector<SeqToken> batch;
  for (int q = 0; q < seqs; ++q)
    for (int i = 0; i < depth; ++i) {
      batch.push_back({.token = tokens[i], .seq = q, .logits = false});
      if (batch.size() == 512 || (q == seqs - 1 && i == depth - 1)) {
        s.Decode(batch);
        batch.clear();
      }
    }
}

// pp: one batch of p tokens after `depth` positions; tokens/s of the Eval call.
double RunPrompt(Session& s, std::span<const int32_t> tokens, int depth, int p) {
  Rewind(s, depth, 1);
  const auto t0 = Clock::now();
  s.Eval(tokens.subspan(depth, p));
  return p / std::max(Seconds(t0), 1e-9);
}

// tg: one untimed start token after `depth` positions, then n single-token Eval calls, timed
// together.
double RunGenerate(Session& s, std::span<const int32_t> tokens, int depth, int n) {
  Rewind(s, depth, 1);
  s.Eval(tokens.subspan(depth, 1));
  const auto t0 = Clock::now();
  for (int i = 1; i <= n; ++i) s.Eval(tokens.subspan(depth + i, 1));
  return n / std::max(Seconds(t0), 1e-9);
}

// tg of `seqs` sequences decoded together: one untimed start token each, then n steps of one
// token per sequence, timed together; tokens/s counts every sequence's tokens.
double RunParallel(Session& s, std::span<const int32_t> tokens, int depth, int n, int seqs) {
  Rewind(s, depth, seqs);
  const std::span<const int32_t> fresh = tokens.subspan(depth);
  std::vector<SeqToken> step(seqs);
  auto fill = [&](int i) {
    for (int q = 0; q < seqs; ++q) step[q] = {.token = fresh[(i + 7 * q) % fresh.size()], .seq = q};
  };
  fill(0);
  s.Decode(step);
  const auto t0 = Clock::now();
  for (int i = 1; i <= n; ++i) {
    fill(i);
    s.Decode(step);
  }
  return (double)n * seqs / std::max(Seconds(t0), 1e-9);
}

}  // namespace

MeanSd MeanAndSd(std::span<const double> xs) {
  double mean = 0, m2 = 0;
  int64_t n = 0;
  for (double x : xs) {
    ++n;
    const double d = x - mean;
    mean += d / (double)n;
    m2 += d * (x - mean);
  }
  return {n > 0 ? mean : 0.0, n > 1 ? std::sqrt(m2 / (double)(n - 1)) : 0.0};
}

uint64_t BytesReadPerToken(const Model& m) {
  uint64_t bytes = 0;
  const Tensor* embd = m.weights.Find("token_embd.weight");
  for (const Tensor& t : m.weights.all())
    if (&t != embd) bytes += t.nbytes;
  if (embd) {
    const bool tied = !m.weights.Contains("output.weight");
    bytes += tied ? embd->nbytes : RowBytes(embd->type, embd->ne[0]);
  }
  return bytes;
}

std::vector<int32_t> BenchTokens(int vocab, int count, uint32_t seed) {
  SMELT_ASSERT(vocab > 0 && count >= 0);
  std::mt19937 rng(seed);  // its output sequence is fixed by the standard (unlike the distributions)
  std::vector<int32_t> ids(count);
  for (auto& id : ids) id = (int32_t)(rng() % (uint32_t)vocab);
  return ids;
}

BenchReport RunBench(const Model& m, const BenchOptions& opt) {
  if (opt.threads.empty()) Fail("bench: no thread counts");
  for (int t : opt.threads)
    if (t < 1) Fail("bench: thread count {} (need at least 1)", t);
  for (int n : opt.parallel)
    if (n < 1 || n > 256) Fail("bench: {} parallel sequences (need 1 to 256)", n);
  if (opt.prompt < 0 || opt.gen < 0 || opt.depth < 0)
    Fail("bench: negative token count (-p {}, -n {}, -d {})", opt.prompt, opt.gen, opt.depth);
  if (opt.prompt == 0 && opt.gen == 0) Fail("bench: nothing to measure (-p 0 and -n 0)");
  if (opt.repetitions < 1) Fail("bench: {} repetitions (need at least 1)", opt.repetitions);

  BenchReport r;
  for (const Tensor& t : m.weights.all()) {
    r.bytes += t.nbytes;
    r.parameters += t.nelements();
  }
  r.model = fmt::format("{} {} {}", m.config.arch, ParamsLabel(r.parameters), MainType(m));
  r.bytes_per_token = BytesReadPerToken(m);
  // The KV cache type and the activations are said where they are not the defaults.
  r.backend = fmt::format("CPU ({}{}{})", KernelPath(),
                          opt.kv == KvType::kF32 ? "" : fmt::format(", kv {}", KvTypeName(opt.kv)),
                          opt.activations == Activations::kGgml ? "" : ", exact activations");

  const int context = opt.depth + std::max(opt.prompt, opt.gen + 1);
  const std::vector<int32_t> tokens = BenchTokens(m.config.vocab, context, opt.seed);
  // llama-bench's names: "tg64 @ d1024" for a test at depth 1024.
  const std::string at = opt.depth > 0 ? fmt::format(" @ d{}", opt.depth) : "";
  int sequences = 1;
  for (int n : opt.parallel) sequences = std::max(sequences, n);
  for (int threads : opt.threads) {
    SessionOptions so;
    so.threads = threads;
    so.context = context;
    so.kv = opt.kv;
    so.activations = opt.activations;
    so.sequences = sequences;
    Session session(m, so);
    if (opt.depth > 0) Prefill(session, tokens, opt.depth, sequences);
    auto measure = [&](std::string test, int count, auto run) {
      BenchResult b;
      b.test = std::move(test);
      b.threads = threads;
      b.tokens = count;
      run();  // warm-up: pages mapped, caches and thread team ready
      for (int i = 0; i < opt.repetitions; ++i) b.tokens_per_s.push_back(run());
      b.stats = MeanAndSd(b.tokens_per_s);
      r.results.push_back(std::move(b));
    };
    if (opt.prompt > 0)
      measure(fmt::format("pp{}{}", opt.prompt, at), opt.prompt,
              [&] { return RunPrompt(session, tokens, opt.depth, opt.prompt); });
    if (opt.gen > 0)
      measure(fmt::format("tg{}{}", opt.gen, at), opt.gen,
              [&] { return RunGenerate(session, tokens, opt.depth, opt.gen); });
    for (int n : opt.parallel)
      if (n > 1 && opt.gen > 0)
        measure(fmt::format("tg{}x{}{}", opt.gen, n, at), opt.gen * n,
                [&] { return RunParallel(session, tokens, opt.depth, opt.gen, n); });
  }

  if (opt.bandwidth_mib > 0 && opt.gen > 0) {
    for (int threads : opt.threads) {
      BandwidthOptions bo;
      bo.mib = opt.bandwidth_mib;
      bo.repetitions = opt.bandwidth_repetitions;
      bo.threads = threads;
      const Bandwidth bw = MeasureReadBandwidth(bo);
      r.ceilings.push_back({.threads = threads,
                            .gb_per_s = bw.best,
                            .tokens_per_s = r.bytes_per_token ? bw.best * 1e9 / (double)r.bytes_per_token : 0.0});
    }
  }
  return r;
}

}  // namespace smelt
