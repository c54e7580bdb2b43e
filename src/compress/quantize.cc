#include "compress/quantize.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "formats/codes.h"
#include "formats/types.h"

namespace smelt {

Tensor EncodeTensor(const Tensor& t, DType type, const float* importance, int threads) {
  const TypeTraits& tr = Traits(type);
  const int64_t n = t.ne[0], rows = t.nrows();
  const size_t row_bytes = RowBytes(type, n);
  std::vector<uint8_t> buf(row_bytes * (size_t)rows);
#pragma omp parallel num_threads(threads) if (threads > 1 && rows > 1)
  {
    std::vector<float> row(n);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      DequantizeRow(t, r, row.data());
      uint8_t* dst = buf.data() + r * row_bytes;
      if (importance) {
        tr.from_float_weighted(row.data(), importance, dst, n);
      } else {
        tr.from_float(row.data(), dst, n);
      }
    }
  }
  return TensorFromBytes(t, type, std::move(buf));
}

std::optional<QuantMethod> ParseQuantMethod(std::string_view name) {
  if (name == "rtn") return QuantMethod::kRtn;
  if (name == "mse") return QuantMethod::kMse;
  if (name == "gptq") return QuantMethod::kGptq;
  if (name == "awq") return QuantMethod::kAwq;
  return std::nullopt;
}

std::string_view QuantMethodName(QuantMethod m) {
  switch (m) {
    case QuantMethod::kRtn: return "rtn";
    case QuantMethod::kMse: return "mse";
    case QuantMethod::kGptq: return "gptq";
    case QuantMethod::kAwq: return "awq";
  }
  return "?";
}

std::string QuantizeSummary::Fallbacks() const {
  std::string s;
  for (const TensorChoice& c : tensors)
    if (c.to != c.wanted) s += fmt::format("{}{}={}", s.empty() ? "" : ", ", c.name, DTypeName(c.to));
  return s;
}

namespace {

// The shares of v's values (rows of `cols`) that are non-zero, and that a sparse type `tr` stores:
// per group of sparse_m (or per row) the non-zeros up to its room.
void SparseShares(const std::vector<float>& v, int64_t cols, const TypeTraits& tr, double* nonzero, double* stored) {
  const int64_t group = tr.sparse_per_row ? cols : tr.sparse_m;
  const int64_t room = tr.sparse_per_row ? tr.sparse_n * (cols / tr.sparse_m) : tr.sparse_n;
  int64_t nz = 0, kept = 0;
  for (size_t g = 0; g + (size_t)group <= v.size(); g += (size_t)group) {
    int64_t count = 0;
    for (int64_t i = 0; i < group; ++i) count += v[g + (size_t)i] != 0.0f;
    nz += count;
    kept += std::min(count, room);
  }
  *nonzero = v.empty() ? 1.0 : (double)nz / (double)v.size();
  *stored = v.empty() ? 1.0 : (double)kept / (double)v.size();
}

}  // namespace

Model QuantizeModel(const Model& model, const QuantizeOptions& opt, QuantizeSummary* summary) {
  const auto start = std::chrono::steady_clock::now();
  // The type each matrix is written as: its rule's, or the fallback when the block does not fit;
  // nullopt when no rule (or "keep") applies.
  auto target = [&](const Tensor& t) -> std::optional<DType> {
    const TypeRule* rule = MatchTypeRule(opt.rules, t.name);
    if (!rule || !rule->type || t.n_dims != 2) return std::nullopt;
    return FallbackType(*rule->type, t.ne[0]);
  };
  // smoothquant: activation ranges migrated into the weights first; later steps see the smoothed
  // model and its inputs' statistics.
  const ActivationStats* stats = opt.stats;
  std::optional<SmoothQuantResult> smoothed;
  std::set<std::string> smoothed_names;
  if (opt.smooth_alpha) {
    if (!opt.stats) Fail("{}: smoothquant needs calibration data (--calib)", model.source);
    if (opt.method == QuantMethod::kAwq) Fail("{}: smoothquant and awq both rescale input channels; choose one", model.source);
    smoothed = SmoothQuantModel(model, *opt.stats, *opt.smooth_alpha, target);
    stats = &smoothed->stats;
    for (const SmoothGroupChoice& g : smoothed->groups)
      if (g.smoothed) smoothed_names.insert(g.group.weights.begin(), g.group.weights.end());
  }
  const Model& base = smoothed ? smoothed->model : model;
  // awq: the scales are searched and folded first; the rest encodes the folded model.
  std::optional<AwqFolded> folded;
  struct AwqTensor {
    const AwqGroupChoice* group;
    const std::vector<float>* column_scale;  // of this matrix's input
  };
  std::map<std::string, AwqTensor> awq_of;
  const bool awq = opt.method == QuantMethod::kAwq;
  std::optional<ActivationStats> awq_stats;
  if (awq) {
    if (!stats && !opt.samples) Fail("{}: awq needs calibration data (--calib)", model.source);
    AwqOptions ao = opt.awq;
    ao.threads = opt.threads;
    if (opt.samples) {  // one group's Hessian at a time (see AwqScaleModelStaged)
      StatsOptions so;
      so.threads = opt.threads;
      so.progress = opt.calib_progress;
      awq_stats.emplace();
      folded = AwqScaleModelStaged(base, *opt.samples, so, target, ao, &*awq_stats);
      stats = &*awq_stats;
    } else {
      folded = AwqScaleModel(base, *stats, target, ao);
    }
    for (const AwqGroupChoice& g : folded->groups)
      if (g.searched)
        for (const std::string& n : g.group.weights) awq_of[n] = {&g, &g.result.scale};
  }
  const Model& src = folded ? folded->model : base;
  Model out = src;  // tensors share the input's data until replaced
  QuantizeSummary sum;
  std::vector<const Tensor*> matrices;
  for (const Tensor& t : src.weights.all())
    if (t.n_dims == 2) matrices.push_back(&t);
  int done = 0;
  const bool staged_gptq = opt.method == QuantMethod::kGptq && opt.samples;
  // Matrix t of src encoded by the method into `out`; s: the statistics of its input (nullptr:
  // none, e.g. a token embedding no projection reads).
  auto encode = [&](const Tensor& t, const InputStats* s) {
    const DType from = model.weights.Get(t.name).type;  // before smoothing or awq folded it to f32
    TensorChoice c{t.name, from, from, from, false};
    c.smoothed = smoothed_names.count(t.name) > 0;
    const std::optional<DType> to = target(t);
    if (!to) return c;
    if (!FindTraits((uint32_t)t.type) || !Traits(t.type).to_float)
      Fail("{}: tensor {}: type {} cannot be read to re-quantize", model.source, t.name, (uint32_t)t.type);
    c.wanted = *MatchTypeRule(opt.rules, t.name)->type;
    c.to = *to;
    const TypeTraits& tr = Traits(c.to);
    const auto a = awq_of.find(t.name);
    if (a != awq_of.end()) {
      c.awq = true;
      c.awq_alpha = a->second.group->result.alpha;
      c.awq_loss = a->second.group->result.loss;
      c.awq_loss_rtn = a->second.group->result.loss_rtn;
    }
    if (s && s->columns != t.ne[0])
      Fail("{}: calibration statistics for {} have {} columns, the tensor {}", model.source, t.name, s->columns,
           t.ne[0]);
    std::vector<float> importance;
    const bool mse = opt.method == QuantMethod::kMse || (awq && opt.awq.clip);
    if (mse && tr.from_float_weighted) {
      c.weighted = true;
      if (s) {
        importance = s->MeanSquare();
        c.importance = true;
        // A scaled matrix reads x_c / s_c.
        if (a != awq_of.end())
          for (int64_t i = 0; i < t.ne[0]; ++i)
            importance[i] /= (*a->second.column_scale)[i] * (*a->second.column_scale)[i];
      } else {
        importance.assign(t.ne[0], 1.0f);  // plain MSE
      }
    }
    if (opt.method == QuantMethod::kGptq && HasCodeAccess(c.to) && s) {
      if (s->hessian.empty()) Fail("{}: gptq needs input Hessians; the statistics have none", model.source);
      const std::vector<float> w = DequantizeAll(t);
      GptqOptions g = opt.gptq;
      g.threads = opt.threads;
      GptqResult r = GptqQuantize(w.data(), t.nrows(), t.ne[0], s->hessian.data(), c.to, g);
      c.gptq = true;
      c.gptq_loss = r.proxy_loss;
      out.weights.Set(TensorFromBytes(t, c.to, std::move(r.data)));
      return c;
    }
    if (c.to != t.type || c.weighted || tr.quantized)
      out.weights.Set(EncodeTensor(t, c.to, importance.empty() ? nullptr : importance.data(), opt.threads));
    if (tr.sparse_m) SparseShares(DequantizeAll(t), t.ne[0], tr, &c.nonzero_before, &c.nonzero_stored);
    return c;
  };
  if (opt.method == QuantMethod::kGptq && !stats && !opt.samples)
    Fail("{}: gptq needs calibration data (--calib)", model.source);
  // gptq with samples: each projection group is encoded as soon as the staged pass has its
  // Hessian, inside the pass that runs `out` (so later groups read the quantized ones).
  std::map<std::string, TensorChoice> encoded;
  if (staged_gptq) {
    StatsOptions so;
    so.hessian = true;
    so.keep_hessians = false;
    so.threads = opt.threads;
    so.progress = opt.calib_progress;
    CollectActivationStatsStaged(out, *opt.samples, so,
                                 [&](int, std::span<const std::string> weights, const ActivationStats& st) {
                                   for (const std::string& w : weights) {
                                     encoded.emplace(w, encode(src.weights.Get(w), st.Find(w)));
                                     if (opt.progress) opt.progress(++done, (int)matrices.size());
                                   }
                                 });
  }
  for (const Tensor* t : matrices) {
    if (const auto e = encoded.find(t->name); e != encoded.end()) {
      sum.tensors.push_back(e->second);
      continue;
    }
    sum.tensors.push_back(encode(*t, staged_gptq || !stats ? nullptr : stats->Find(t->name)));
    if (opt.progress) opt.progress(++done, (int)matrices.size());
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (summary) *summary = std::move(sum);
  return out;
}

}  // namespace smelt
