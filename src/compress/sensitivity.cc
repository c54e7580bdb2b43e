#include "compress/sensitivity.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "compress/quantize.h"
#include "compress/rules.h"
#include "core/error.h"
#include "formats/types.h"
#include "runtime/session.h"

namespace smelt {
namespace {

// log-softmax of n logits into out.
void LogProbs(const float* logits, int64_t n, float* out) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, logits[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp((double)logits[i] - mx);
  const double lse = mx + std::log(s);
  for (int64_t i = 0; i < n; ++i) out[i] = (float)((double)logits[i] - lse);
}

// Log-probs at every position of every sample (concatenated, vocab floats per position).
std::vector<float> AllLogProbs(const Model& model, const std::vector<std::vector<int32_t>>& samples, int threads) {
  size_t positions = 0, ctx = 0;
  for (const auto& s : samples) positions += s.size(), ctx = std::max(ctx, s.size());
  const int64_t vocab = model.config.vocab;
  std::vector<float> out(positions * (size_t)vocab);
  SessionOptions so;
  so.threads = threads;
  so.context = (int)ctx;
  Session session(model, so);
  size_t at = 0;
  for (const auto& s : samples) {
    session.Reset();
    const std::span<const float> logits = session.Eval(s, true);
    for (size_t p = 0; p < s.size(); ++p, ++at) LogProbs(logits.data() + p * vocab, vocab, out.data() + at * vocab);
  }
  return out;
}

// Mean over positions of KL(base || model), both as log-probs.
double MeanKl(const std::vector<float>& base, const std::vector<float>& model, int64_t vocab) {
  const size_t positions = base.size() / (size_t)vocab;
  double sum = 0;
  for (size_t p = 0; p < positions; ++p) {
    const float *b = base.data() + p * vocab, *m = model.data() + p * vocab;
    double k = 0;
    for (int64_t i = 0; i < vocab; ++i) k += std::exp((double)b[i]) * ((double)b[i] - (double)m[i]);
    sum += std::max(k, 0.0);
  }
  return positions ? sum / (double)positions : 0;
}

double Sqnr(const std::vector<float>& w, const std::vector<float>& w_hat) {
  double s = 0, e = 0;
  for (size_t i = 0; i < w.size(); ++i) s += (double)w[i] * w[i], e += ((double)w_hat[i] - w[i]) * ((double)w_hat[i] - w[i]);
  return e == 0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(s / e);
}

}  // namespace

std::optional<SensitivityKind> ParseSensitivityKind(std::string_view name) {
  if (name == "proxy") return SensitivityKind::kProxy;
  if (name == "kl") return SensitivityKind::kKl;
  return std::nullopt;
}

std::string_view SensitivityKindName(SensitivityKind k) { return k == SensitivityKind::kKl ? "kl" : "proxy"; }

std::vector<DType> DefaultCandidates() {
  return {DType::kQ2_K, DType::kQ3_K, DType::kQ4_0, DType::kQ4_K,
          DType::kQ5_0, DType::kQ5_K, DType::kQ6_K, DType::kQ8_0};
}

std::vector<DType> ParseCandidates(std::string_view spec) {
  std::vector<DType> out;
  while (!spec.empty()) {
    const size_t end = spec.find_first_of(",;");
    std::string_view name = spec.substr(0, end);
    spec = end == std::string_view::npos ? std::string_view() : spec.substr(end + 1);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name.empty()) continue;
    const std::optional<DType> t = ParseDType(name);
    if (!t) Fail("--candidates: unknown type '{}'", name);
    if (!Traits(*t).from_float) Fail("--candidates: smelt cannot write {} tensors", name);
    if (*t == DType::kQ8_K || *t == DType::kQ8_1) Fail("--candidates: {} is an activation format, not a weight type", name);
    out.push_back(*t);
  }
  if (out.empty()) Fail("--candidates: no types given");
  return out;
}

double WeightedSquaredError(const float* w, const float* w_hat, int64_t rows, int64_t cols, const float* col_weight,
                            const float* row_weight) {
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double row = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double d = (double)w_hat[r * cols + c] - (double)w[r * cols + c];
      row += (col_weight ? (double)col_weight[c] : 1.0) * d * d;
    }
    total += (row_weight ? (double)row_weight[r] : 1.0) * row;
  }
  return total;
}

std::vector<MatrixSensitivity> AnalyzeSensitivity(const Model& model, const SensitivityOptions& opt) {
  if (opt.candidates.empty()) Fail("{}: sensitivity analysis needs candidate types", model.source);
  if (opt.kind == SensitivityKind::kProxy && !opt.stats)
    Fail("{}: proxy sensitivity needs calibration statistics (--calib)", model.source);
  if (opt.kind == SensitivityKind::kKl && (!opt.samples || opt.samples->empty()))
    Fail("{}: kl sensitivity needs calibration samples (--calib)", model.source);

  std::vector<const Tensor*> matrices;
  for (const Tensor& t : model.weights.all()) {
    if (t.n_dims != 2) continue;
    if (!opt.only.empty() && std::find(opt.only.begin(), opt.only.end(), t.name) == opt.only.end()) continue;
    if (!FindTraits((uint32_t)t.type) || !Traits(t.type).to_float)
      Fail("{}: tensor {}: type {} cannot be read to re-quantize", model.source, t.name, (uint32_t)t.type);
    matrices.push_back(&t);
  }

  // Token shares for the embedding stand-in: calibration token counts, or uniform without samples.
  const int64_t vocab = model.config.vocab;
  std::vector<float> token_share((size_t)vocab, vocab ? 1.0f / (float)vocab : 0.0f);
  if (opt.samples && !opt.samples->empty()) {
    std::vector<double> count((size_t)vocab, 0);
    double n = 0;
    for (const auto& s : *opt.samples)
      for (int32_t tok : s)
        if (tok >= 0 && tok < vocab) count[tok] += 1, n += 1;
    for (int64_t t = 0; t < vocab; ++t) token_share[t] = n > 0 ? (float)(count[t] / n) : 0.0f;
  }

  std::vector<float> base_lp;
  if (opt.kind == SensitivityKind::kKl) base_lp = AllLogProbs(model, *opt.samples, opt.threads);

  std::vector<MatrixSensitivity> out;
  const int total = (int)(matrices.size() * opt.candidates.size());
  int done = 0;
  for (const Tensor* t : matrices) {
    MatrixSensitivity ms;
    ms.name = t->name;
    ms.elements = t->nelements();
    const std::vector<float> w = DequantizeAll(*t);
    std::vector<float> col_weight;
    const float* row_weight = nullptr;
    if (const InputStats* s = opt.stats ? opt.stats->Find(t->name) : nullptr) {
      if (s->columns != t->ne[0])
        Fail("{}: calibration statistics for {} have {} columns, the tensor {}", model.source, t->name, s->columns,
             t->ne[0]);
      col_weight = s->MeanSquare();
      ms.has_stats = true;
    } else if (t->nrows() == vocab) {
      row_weight = token_share.data();  // a token embedding: row t is read with token t's share
    } else if (opt.kind == SensitivityKind::kProxy) {
      Fail("{}: no calibration statistics for {}", model.source, t->name);
    }
    for (DType want : opt.candidates) {
      CandidateDamage cd;
      cd.wanted = want;
      cd.type = FallbackType(want, t->ne[0]);
      const Tensor q = cd.type == t->type ? *t : EncodeTensor(*t, cd.type, nullptr, opt.threads);
      cd.bytes = q.nbytes;
      const std::vector<float> w_hat = DequantizeAll(q);
      cd.sqnr_db = Sqnr(w, w_hat);
      if (opt.kind == SensitivityKind::kProxy) {
        cd.damage = WeightedSquaredError(w.data(), w_hat.data(), t->nrows(), t->ne[0],
                                         col_weight.empty() ? nullptr : col_weight.data(), row_weight);
      } else {
        Model one = model;  // shares every tensor but the one replaced
        one.weights.Set(q);
        cd.damage = MeanKl(base_lp, AllLogProbs(one, *opt.samples, opt.threads), vocab);
      }
      ms.candidates.push_back(cd);
      if (opt.progress) opt.progress(++done, total);
    }
    out.push_back(std::move(ms));
  }
  return out;
}

}  // namespace smelt
