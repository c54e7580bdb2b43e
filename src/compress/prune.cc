#include "compress/prune.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include "compress/quantize.h"
#include "compress/rules.h"
#include "core/error.h"
#include "formats/codes.h"
#include "formats/types.h"

namespace smelt {
namespace {

constexpr std::array<const char*, 7> kProjections = {"attn_q.weight",    "attn_k.weight",  "attn_v.weight",
                                                     "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                                     "ffn_down.weight"};

// The block index of "blk.N.*", -1 for any other name.
int LayerOf(const std::string& name) {
  if (!name.starts_with("blk.")) return -1;
  return std::atoi(name.c_str() + 4);
}

// The type a pruned matrix is written as: opt.type (or its fallback when its block does not
// divide the rows), else the input's float type, else f32.
DType OutputType(const Tensor& t, const PruneOptions& opt) {
  if (opt.type) return FallbackType(*opt.type, t.ne[0]);
  return t.type == DType::kF16 || t.type == DType::kBF16 ? t.type : DType::kF32;
}

// The pruned weights w (zeros where pruned) of tensor t written as `type`; Error unless every
// zero of w decodes to exactly zero.
Tensor WritePruned(const Model& model, const Tensor& t, const std::vector<float>& w, DType type, int threads) {
  std::vector<uint8_t> bytes(w.size() * sizeof(float));
  std::memcpy(bytes.data(), w.data(), bytes.size());
  Tensor f32 = TensorFromBytes(t, DType::kF32, std::move(bytes));
  if (type == DType::kF32) return f32;
  Tensor out = EncodeTensor(f32, type, nullptr, threads);
  const std::vector<float> back = DequantizeAll(out);
  for (size_t i = 0; i < w.size(); ++i)
    if (w[i] == 0.0f && back[i] != 0.0f)
      Fail("{}: tensor {}: {} does not keep pruned weights at exactly zero (row {}); choose a type with an exact zero "
           "such as q8_0, q4_0 or f16",
           model.source, t.name, DTypeName(type), (int64_t)i / t.ne[0]);
  return out;
}

}  // namespace

std::optional<PruneMethod> ParsePruneMethod(std::string_view name) {
  if (name == "magnitude") return PruneMethod::kMagnitude;
  if (name == "wanda") return PruneMethod::kWanda;
  if (name == "sparsegpt") return PruneMethod::kSparseGpt;
  return std::nullopt;
}

std::string_view PruneMethodName(PruneMethod m) {
  switch (m) {
    case PruneMethod::kMagnitude: return "magnitude";
    case PruneMethod::kWanda: return "wanda";
    case PruneMethod::kSparseGpt: return "sparsegpt";
  }
  return "?";
}

std::optional<PruneAllocation> ParsePruneAllocation(std::string_view name) {
  if (name == "uniform") return PruneAllocation::kUniform;
  if (name == "global") return PruneAllocation::kGlobal;
  if (name == "owl") return PruneAllocation::kOwl;
  return std::nullopt;
}

std::string_view PruneAllocationName(PruneAllocation a) {
  switch (a) {
    case PruneAllocation::kUniform: return "uniform";
    case PruneAllocation::kGlobal: return "global";
    case PruneAllocation::kOwl: return "owl";
  }
  return "?";
}

std::optional<NmPattern> ParseNmPattern(std::string_view text) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto number = [](std::string_view s) -> int {
    if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return -1;
    return std::stoi(std::string(s));
  };
  const int n = number(text.substr(0, colon)), m = number(text.substr(colon + 1));
  if (n < 1 || m < 1 || n >= m) return std::nullopt;
  return NmPattern{n, m};
}

// ---- masks ------------------------------------------------------------------------------------

void MarkLowest(const float* scores, int64_t n, int64_t k, uint8_t* pruned) {
  std::fill_n(pruned, n, 0);
  k = std::clamp<int64_t>(k, 0, n);
  if (k == 0) return;
  std::vector<int64_t> idx((size_t)n);
  std::iota(idx.begin(), idx.end(), 0);
  auto before = [scores](int64_t a, int64_t b) { return scores[a] < scores[b] || (scores[a] == scores[b] && a < b); };
  if (k < n) std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), before);
  for (int64_t i = 0; i < k; ++i) pruned[idx[(size_t)i]] = 1;
}

void MarkNm(const float* scores, int64_t n, NmPattern p, uint8_t* pruned) {
  SMELT_ASSERT(p.structured() && n % p.m == 0);
  for (int64_t g = 0; g < n; g += p.m) MarkLowest(scores + g, p.m, p.m - p.n, pruned + g);
}

std::vector<float> PruneScores(const float* W, int64_t OC, int64_t C, const InputStats* input) {
  std::vector<float> norm((size_t)C, 1.0f);
  if (input) {
    SMELT_ASSERT(input->columns == C);
    for (int64_t j = 0; j < C; ++j) norm[(size_t)j] = (float)std::sqrt(input->sum_sq[(size_t)j]);
  }
  std::vector<float> s((size_t)(OC * C));
  for (int64_t r = 0; r < OC; ++r)
    for (int64_t j = 0; j < C; ++j) {
      const float w = W[r * C + j];
      s[(size_t)(r * C + j)] = w == 0.0f ? -std::numeric_limits<float>::infinity() : std::abs(w) * norm[(size_t)j];
    }
  return s;
}

std::vector<uint8_t> SelectMask(const std::vector<float>& scores, int64_t OC, int64_t C, double sparsity,
                                bool per_row, NmPattern pattern) {
  std::vector<uint8_t> mask((size_t)(OC * C));
  if (pattern.structured()) {
    for (int64_t r = 0; r < OC; ++r) MarkNm(&scores[(size_t)(r * C)], C, pattern, &mask[(size_t)(r * C)]);
  } else if (per_row) {
    // Row r prunes round(S·C·(r+1)) - round(S·C·r): within one of S·C, and the matrix holds
    // exactly round(S·OC·C) whatever S is.
    const double per = sparsity * (double)C;
    for (int64_t r = 0; r < OC; ++r) {
      const int64_t k = std::llround(per * (double)(r + 1)) - std::llround(per * (double)r);
      MarkLowest(&scores[(size_t)(r * C)], C, k, &mask[(size_t)(r * C)]);
    }
  } else {
    MarkLowest(scores.data(), OC * C, std::llround(sparsity * (double)(OC * C)), mask.data());
  }
  return mask;
}

// ---- allocation -------------------------------------------------------------------------------

std::vector<int64_t> GlobalMagnitudeCounts(const std::vector<std::vector<float>>& matrices, double sparsity) {
  // |w|'s bits order non-negative floats as their values do, so the threshold is found on the
  // keys by two 16-bit histograms (high half, then low half within the threshold's bucket).
  auto key = [](float w) { return std::bit_cast<uint32_t>(std::abs(w)); };
  int64_t total = 0;
  for (const auto& m : matrices) total += (int64_t)m.size();
  const int64_t k = std::clamp<int64_t>(std::llround(sparsity * (double)total), 0, total);
  std::vector<int64_t> counts(matrices.size(), 0);
  if (k == 0) return counts;
  // The smallest key t with #(key <= t) >= k, bucket by bucket.
  std::vector<int64_t> hist(65536);
  for (const auto& m : matrices)
    for (float w : m) ++hist[key(w) >> 16];
  int64_t below = 0;
  uint32_t hi = 0;
  while (below + hist[hi] < k) below += hist[hi++];
  std::fill(hist.begin(), hist.end(), 0);
  for (const auto& m : matrices)
    for (float w : m)
      if ((key(w) >> 16) == hi) ++hist[key(w) & 0xffff];
  uint32_t lo = 0;
  while (below + hist[lo] < k) below += hist[lo++];
  const uint32_t t = hi << 16 | lo;
  // Everything below t, then ties at t in (matrix, index) order until k.
  int64_t ties = k - below;
  for (size_t i = 0; i < matrices.size(); ++i) {
    int64_t lt = 0, eq = 0;
    for (float w : matrices[i]) {
      const uint32_t kw = key(w);
      lt += kw < t;
      eq += kw == t;
    }
    const int64_t take = std::min(eq, ties);
    ties -= take;
    counts[i] = lt + take;
  }
  return counts;
}

double OutlierRatio(const std::vector<float>& values, double m) {
  if (values.empty()) return 0;
  double mean = 0;
  for (float v : values) mean += v;
  mean /= (double)values.size();
  int64_t above = 0;
  for (float v : values) above += (double)v > m * mean;
  return (double)above / (double)values.size();
}

std::vector<double> OwlSparsity(const std::vector<double>& outlier_ratio, const std::vector<double>& params,
                                double sparsity, double lambda) {
  SMELT_ASSERT(outlier_ratio.size() == params.size() && !params.empty());
  double total = 0, mean = 0;
  for (size_t l = 0; l < params.size(); ++l) total += params[l], mean += params[l] * outlier_ratio[l];
  mean /= total;
  double spread = 0;
  for (double d : outlier_ratio) spread = std::max(spread, std::abs(d - mean));
  const double lam = std::min({lambda, sparsity, 1.0 - sparsity});
  std::vector<double> s(params.size(), sparsity);
  if (spread == 0) return s;
  for (size_t l = 0; l < params.size(); ++l) s[l] = sparsity - lam * (outlier_ratio[l] - mean) / spread;
  return s;
}

double CubicSchedule(double sparsity, int round, int rounds) {
  const double left = 1.0 - (double)round / (double)rounds;
  return sparsity * (1.0 - left * left * left);
}

// ---- the whole model --------------------------------------------------------------------------

int64_t PruneSummary::parameters() const {
  int64_t n = 0;
  for (const auto& m : matrices) n += m.parameters;
  return n;
}

int64_t PruneSummary::zeros() const {
  int64_t n = 0;
  for (const auto& m : matrices) n += m.zeros;
  return n;
}

int64_t CountZeros(const Tensor& t) {
  const std::vector<float> w = DequantizeAll(t);
  return std::count(w.begin(), w.end(), 0.0f);
}

std::vector<std::string> PruneTargets(const Model& model, const PruneOptions& opt) {
  const std::string& src = model.source;
  if (opt.pattern.structured()) {
    if (opt.pattern.n < 1 || opt.pattern.n >= opt.pattern.m)
      Fail("{}: pattern {}:{} needs 0 < N < M", src, opt.pattern.n, opt.pattern.m);
    if (opt.allocation != PruneAllocation::kUniform)
      Fail("{}: allocation {}: an N:M pattern prunes every matrix alike (use uniform)", src,
           PruneAllocationName(opt.allocation));
    if (opt.rounds != 1) Fail("{}: {} rounds: gradual pruning is for unstructured sparsity, not an N:M pattern", src, opt.rounds);
  } else if (!(opt.sparsity >= 0.0 && opt.sparsity < 1.0)) {
    Fail("{}: sparsity {} is outside [0, 1)", src, opt.sparsity);
  }
  if (opt.rounds < 1) Fail("{}: rounds {} must be >= 1", src, opt.rounds);
  if ((opt.method != PruneMethod::kMagnitude || opt.allocation == PruneAllocation::kOwl) &&
      (!opt.samples || opt.samples->empty()))
    Fail("{}: {}{} needs calibration samples", src, PruneMethodName(opt.method),
         opt.allocation == PruneAllocation::kOwl ? " with owl allocation" : "");
  if (opt.allocation == PruneAllocation::kOwl && !(opt.owl.m > 0 && opt.owl.lambda >= 0))
    Fail("{}: owl needs M > 0 and lambda >= 0 (got {}, {})", src, opt.owl.m, opt.owl.lambda);
  if (opt.type && !FindTraits((uint32_t)*opt.type)) Fail("{}: unknown output type", src);

  std::set<std::string> wanted;
  for (int l = 0; l < model.config.n_layers; ++l)
    for (const char* p : kProjections) wanted.insert(BlockTensorName(l, p));
  const bool tied = !model.weights.Contains("output.weight");
  if (opt.prune_head) wanted.insert(tied ? "token_embd.weight" : "output.weight");
  if (opt.prune_embeddings) wanted.insert("token_embd.weight");
  std::vector<std::string> names;
  for (const Tensor& t : model.weights.all()) {
    if (!wanted.count(t.name)) continue;
    if (t.n_dims != 2) Fail("{}: tensor {} is not a matrix", src, t.name);
    if (!FindTraits((uint32_t)t.type) || !Traits(t.type).to_float)
      Fail("{}: tensor {}: its type cannot be read to prune it", src, t.name);
    if (opt.pattern.structured() && t.ne[0] % opt.pattern.m != 0)
      Fail("{}: pattern {}:{}: M = {} does not divide the {}-value rows of {}", src, opt.pattern.n, opt.pattern.m,
           opt.pattern.m, t.ne[0], t.name);
    names.push_back(t.name);
  }
  for (const std::string& w : wanted)
    if (w.starts_with("blk.") && !model.weights.Contains(w)) Fail("{}: missing tensor {}", src, w);
  return names;
}

Model PruneModel(const Model& model, const PruneOptions& opt, PruneSummary* summary) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::string> names = PruneTargets(model, opt);
  const double S = opt.pattern.structured() ? opt.pattern.sparsity() : opt.sparsity;
  PruneSummary sum;

  // Final sparsity of each matrix, from the allocation on the input model.
  std::map<std::string, double> final_s;
  for (const std::string& n : names) final_s[n] = S;
  if (opt.allocation == PruneAllocation::kGlobal) {
    std::vector<std::vector<float>> mats;
    for (const std::string& n : names) mats.push_back(DequantizeAll(model.weights.Get(n)));
    const std::vector<int64_t> counts = GlobalMagnitudeCounts(mats, S);
    for (size_t i = 0; i < names.size(); ++i) final_s[names[i]] = (double)counts[i] / (double)mats[i].size();
  } else if (opt.allocation == PruneAllocation::kOwl) {
    // Outlier ratios of the Wanda scores on the unpruned model's activations, per block.
    StatsOptions so;
    so.threads = opt.threads;
    const ActivationStats dense = CollectActivationStatsStaged(model, *opt.samples, so);
    const int L = model.config.n_layers;
    std::vector<double> ratio((size_t)L), params((size_t)L);
    for (int l = 0; l < L; ++l) {
      std::vector<float> scores;
      for (const std::string& n : names) {
        if (LayerOf(n) != l) continue;
        const Tensor& t = model.weights.Get(n);
        const std::vector<float> w = DequantizeAll(t);
        const std::vector<float> s = PruneScores(w.data(), t.nrows(), t.ne[0], dense.Find(n));
        for (float v : s) scores.push_back(std::max(v, 0.0f));  // an exact zero scores 0 here
      }
      ratio[(size_t)l] = OutlierRatio(scores, opt.owl.m);
      params[(size_t)l] = (double)scores.size();
    }
    const std::vector<double> sl = OwlSparsity(ratio, params, S, opt.owl.lambda);
    for (const std::string& n : names)
      if (const int l = LayerOf(n); l >= 0) final_s[n] = sl[(size_t)l];
    sum.owl_outlier_ratio = ratio;
  }

  Model out = model;
  const int total = (int)names.size() * opt.rounds;
  int done = 0;
  std::map<std::string, MatrixPruneInfo> info;
  const std::set<std::string> targets(names.begin(), names.end());
  const bool tied = !model.weights.Contains("output.weight");
  // The matrices the staged pass reaches with statistics (the embedding only as a tied head).
  auto has_stats = [&](const std::string& n) { return n != "token_embd.weight" || (tied && opt.prune_head); };
  for (int round = 1; round <= opt.rounds; ++round) {
    const bool last = round == opt.rounds;
    const double s_round = opt.pattern.structured() ? S : CubicSchedule(S, round, opt.rounds);
    const double frac = S > 0 ? s_round / S : 0.0;
    sum.round_sparsity.push_back(s_round);
    // Prunes matrix `name` of `out` with the statistics of its input (nullptr: by magnitude).
    auto prune = [&](const std::string& name, const InputStats* st) {
      const Tensor& t = out.weights.Get(name);
      const int64_t OC = t.nrows(), C = t.ne[0];
      if (st && st->columns != C)
        Fail("{}: calibration statistics for {} have {} columns, the tensor {}", model.source, name, st->columns, C);
      const double s = std::min(final_s[name] * frac, 1.0);
      MatrixPruneInfo mi;
      mi.name = name;
      mi.layer = LayerOf(name);
      mi.parameters = OC * C;
      mi.target = s;
      mi.from = model.weights.Get(name).type;
      const DType to = OutputType(model.weights.Get(name), opt);
      std::vector<float> w = DequantizeAll(t);
      for (size_t i = 0; i < w.size(); ++i)
        if (!std::isfinite(w[i])) Fail("{}: tensor {}: weight {} is not finite", model.source, name, i);
      Tensor written;
      if (opt.method == PruneMethod::kSparseGpt && st && !st->hessian.empty()) {
        SparseGptOptions so = opt.sparsegpt;
        so.threads = opt.threads;
        const bool joint = last && opt.type && HasCodeAccess(to) && C % Traits(to).block_size == 0;
        if (joint) so.quantize = to;
        SparseGptResult r = SparseGptPrune(w.data(), OC, C, st->hessian.data(), s, opt.pattern, so);
        mi.proxy_loss = r.proxy_loss;
        mi.joint = joint;
        if (joint) written = TensorFromBytes(t, to, std::move(r.data));
        w = std::move(r.w);
      } else {
        const bool wanda = opt.method != PruneMethod::kMagnitude && st;
        const std::vector<float> scores = PruneScores(w.data(), OC, C, wanda ? st : nullptr);
        const std::vector<uint8_t> mask = SelectMask(scores, OC, C, s, wanda, opt.pattern);
        for (size_t i = 0; i < w.size(); ++i)
          if (mask[i]) w[i] = 0.0f;
      }
      if (!mi.joint) written = WritePruned(model, t, w, last ? to : DType::kF32, opt.threads);
      mi.to = written.type;
      out.weights.Set(std::move(written));
      info[name] = mi;
      if (opt.progress) opt.progress(++done, total);
    };
    if (opt.method == PruneMethod::kMagnitude) {
      for (const std::string& n : names) prune(n, nullptr);
    } else {
      StatsOptions so;
      so.hessian = opt.method == PruneMethod::kSparseGpt;
      so.keep_hessians = false;
      so.threads = opt.threads;
      CollectActivationStatsStaged(out, *opt.samples, so,
                                   [&](int, std::span<const std::string> weights, const ActivationStats& st) {
                                     for (const std::string& w : weights)
                                       if (targets.count(w) && has_stats(w)) prune(w, st.Find(w));
                                   });
      for (const std::string& n : names)
        if (!has_stats(n)) prune(n, nullptr);
    }
    if (!last && opt.recovery) opt.recovery(round, out);
  }
  for (const std::string& n : names) {
    MatrixPruneInfo& mi = info.at(n);
    mi.zeros = CountZeros(out.weights.Get(n));
    sum.matrices.push_back(mi);
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (summary) *summary = std::move(sum);
  return out;
}

}  // namespace smelt
