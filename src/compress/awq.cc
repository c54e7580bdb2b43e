#include "compress/awq.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "core/error.h"
#include "formats/types.h"

namespace smelt {
namespace {

// Runs Q(W·diag(s))·diag(s)⁻¹ row by row; `row_done(r, q)` gets each output row (C values) on the
// thread that computed it.
template <class RowFn>
void ForEachScaledRow(const float* W, int64_t OC, int64_t C, const float* s, const AwqEncoder& enc, int threads,
                      RowFn&& row_done) {
  const TypeTraits& tr = Traits(enc.type);
  if (!tr.from_float || !tr.to_float) Fail("awq: type {} cannot be written", DTypeName(enc.type));
  if (C % tr.block_size != 0) Fail("awq: rows of {} values do not fit {} blocks", C, DTypeName(enc.type));
  const bool weighted = enc.importance && tr.from_float_weighted;
  std::vector<float> importance;
  if (weighted) {
    // The scaled weight reads x_c / s_c, whose mean square is E[x_c²] / s_c².
    importance.resize(C);
    for (int64_t c = 0; c < C; ++c) importance[c] = enc.importance[c] / (s[c] * s[c]);
  }
  const size_t row_bytes = RowBytes(enc.type, C);
#pragma omp parallel num_threads(threads) if (threads > 1 && OC > 1)
  {
    std::vector<float> scaled(C), q(C);
    std::vector<uint64_t> buf((row_bytes + 7) / 8);  // 8-byte aligned, as BlockAlignment asks at most
#pragma omp for schedule(static)
    for (int64_t r = 0; r < OC; ++r) {
      const float* w = W + r * C;
      for (int64_t c = 0; c < C; ++c) scaled[c] = w[c] * s[c];
      if (weighted) {
        tr.from_float_weighted(scaled.data(), importance.data(), buf.data(), C);
      } else {
        tr.from_float(scaled.data(), buf.data(), C);
      }
      tr.to_float(buf.data(), q.data(), C);
      for (int64_t c = 0; c < C; ++c) q[c] /= s[c];
      row_done(r, q.data());
    }
  }
}

void CheckScale(std::span<const float> s, int64_t n, const std::string& what) {
  if ((int64_t)s.size() != n) Fail("awq: scale of {} channels for {} with {}", s.size(), what, n);
  for (float v : s)
    if (!(v > 0.0f) || !std::isfinite(v)) Fail("awq: scale for {} has a non-positive or non-finite value", what);
}

// Replaces tensor `name` by f32 values `v` of the same shape.
void SetF32(Weights& weights, const Tensor& like, std::vector<float> v) {
  std::vector<int64_t> shape(like.ne.begin(), like.ne.begin() + like.n_dims);
  weights.Set(MakeF32Tensor(like.name, std::move(shape), std::move(v)));
}

}  // namespace

std::vector<float> AwqScaledQuantize(const float* W, int64_t OC, int64_t C, const float* s, const AwqEncoder& enc,
                                     int threads) {
  std::vector<float> out(OC * C);
  ForEachScaledRow(W, OC, C, s, enc, threads,
                   [&](int64_t r, const float* q) { std::copy(q, q + C, out.begin() + r * C); });
  return out;
}

double AwqScaledLoss(const float* W, int64_t OC, int64_t C, const double* H, const float* s, const AwqEncoder& enc,
                     int threads) {
  // Per-row losses summed in row order afterwards: the same total for any thread count.
  std::vector<double> row_loss(OC, 0.0);
  ForEachScaledRow(W, OC, C, s, enc, threads, [&](int64_t r, const float* q) {
    const float* w = W + r * C;
    double loss = 0;
    for (int64_t i = 0; i < C; ++i) {
      const double di = (double)q[i] - w[i];
      if (di == 0.0) continue;
      const double* h = H + i * C;
      double hd = 0;
      for (int64_t j = 0; j < C; ++j) hd += h[j] * ((double)q[j] - w[j]);
      loss += di * hd;
    }
    row_loss[r] = loss;
  });
  double total = 0;
  for (double v : row_loss) total += v;
  return total;
}

std::vector<float> AwqScale(std::span<const float> mean_abs, double alpha) {
  std::vector<double> s(mean_abs.size());
  for (size_t c = 0; c < s.size(); ++c) s[c] = std::max(std::pow((double)mean_abs[c], alpha), 1e-4);
  std::vector<float> out(s.size(), 1.0f);
  if (s.empty()) return out;
  const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
  const double norm = std::sqrt(*lo * *hi);
  for (size_t c = 0; c < s.size(); ++c) out[c] = (float)(s[c] / norm);
  return out;
}

AwqSearchResult AwqSearchScale(std::span<const AwqMember> members, const InputStats& stats, const AwqOptions& opt) {
  const int64_t C = stats.columns;
  if (stats.hessian.size() != (size_t)(C * C)) Fail("awq: the calibration statistics have no input Hessian");
  if (stats.sum_abs.size() != (size_t)C) Fail("awq: the calibration statistics have no mean |x|");
  if (opt.grid < 1) Fail("awq: grid of {} points; it needs at least 1", opt.grid);
  const std::vector<float> mean_abs = stats.MeanAbs();
  const std::vector<float> mean_sq = stats.MeanSquare();
  AwqSearchResult best;
  for (int i = 0; i < opt.grid; ++i) {
    const double alpha = (double)i / opt.grid;
    std::vector<float> s = AwqScale(mean_abs, alpha);
    double loss = 0;
    for (const AwqMember& m : members) {
      const AwqEncoder enc{m.type, opt.clip ? mean_sq.data() : nullptr};
      loss += AwqScaledLoss(m.w, m.rows, C, stats.hessian.data(), s.data(), enc, opt.threads);
    }
    if (i == 0) best.loss_rtn = loss;
    if (i == 0 || loss < best.loss) {
      best.alpha = alpha;
      best.loss = loss;
      best.scale = std::move(s);
    }
  }
  return best;
}

std::vector<AwqGroup> AwqGroups(const Model& model) {
  const ModelConfig& c = model.config;
  std::vector<AwqGroup> groups;
  for (int l = 0; l < c.n_layers; ++l) {
    auto name = [l](const char* suffix) { return BlockTensorName(l, suffix); };
    groups.push_back({AwqGroup::Prev::kNorm,
                      name("attn_norm.weight"),
                      {name("attn_q.weight"), name("attn_k.weight"), name("attn_v.weight")}});
    if (c.n_kv_heads == c.n_heads)
      groups.push_back({AwqGroup::Prev::kV, name("attn_v.weight"), {name("attn_output.weight")}});
    groups.push_back(
        {AwqGroup::Prev::kNorm, name("ffn_norm.weight"), {name("ffn_gate.weight"), name("ffn_up.weight")}});
    groups.push_back({AwqGroup::Prev::kUp, name("ffn_up.weight"), {name("ffn_down.weight")}});
  }
  return groups;
}

void FoldAwqScale(Weights& weights, const AwqGroup& group, std::span<const float> s) {
  for (const std::string& n : group.weights) {
    const Tensor& t = weights.Get(n);
    const int64_t C = t.ne[0];
    CheckScale(s, C, n);
    std::vector<float> v = DequantizeAll(t);
    for (int64_t r = 0; r < t.nrows(); ++r)
      for (int64_t c = 0; c < C; ++c) v[r * C + c] *= s[c];
    SetF32(weights, t, std::move(v));
  }
  const Tensor& p = weights.Get(group.prev_name);
  if (group.prev == AwqGroup::Prev::kNorm) {
    CheckScale(s, p.nelements(), p.name);
    std::vector<float> v = DequantizeAll(p);
    for (size_t c = 0; c < v.size(); ++c) v[c] /= s[c];
    SetF32(weights, p, std::move(v));
    return;
  }
  // ffn_up or attn_v: output channel r (a row) divided by s_r, and so is attn_v's bias.
  const int64_t C = p.ne[0];
  CheckScale(s, p.nrows(), p.name);
  std::vector<float> v = DequantizeAll(p);
  for (int64_t r = 0; r < p.nrows(); ++r)
    for (int64_t c = 0; c < C; ++c) v[r * C + c] /= s[r];
  SetF32(weights, p, std::move(v));
  if (group.prev == AwqGroup::Prev::kV) {
    std::string bias = group.prev_name;
    bias.replace(bias.size() - std::string("weight").size(), std::string::npos, "bias");
    if (const Tensor* b = weights.Find(bias)) {
      CheckScale(s, b->nelements(), bias);
      std::vector<float> bv = DequantizeAll(*b);
      for (size_t r = 0; r < bv.size(); ++r) bv[r] /= s[r];
      SetF32(weights, *b, std::move(bv));
    }
  }
}

const Tensor& GroupTensor(const Weights& weights, const std::string& name, const std::string& source,
                          std::string_view pass) {
  const Tensor* t = weights.Find(name);
  if (!t) Fail("{}: {}: missing tensor {}", source, pass, name);
  if (!FindTraits((uint32_t)t->type) || !Traits(t->type).to_float)
    Fail("{}: tensor {}: type {} cannot be read to re-quantize", source, name, (uint32_t)t->type);
  return *t;
}

std::optional<std::vector<DType>> GroupTargets(const Weights& weights, const AwqGroup& group,
                                               const std::function<std::optional<DType>(const Tensor&)>& target,
                                               const std::string& source, std::string_view pass) {
  std::vector<DType> types;
  bool encoded = true;  // every tensor is looked up, so a missing one is an error even in a kept group
  for (const std::string& n : group.weights) {
    const std::optional<DType> t = target(GroupTensor(weights, n, source, pass));
    encoded = encoded && t.has_value();
    if (t) types.push_back(*t);
  }
  // ffn_up and attn_v change when folded, so they must be written anew too.
  if (group.prev != AwqGroup::Prev::kNorm && !target(GroupTensor(weights, group.prev_name, source, pass)))
    encoded = false;
  if (!encoded) return std::nullopt;
  return types;
}

const InputStats& GroupInputStats(const ActivationStats& stats, const Weights& weights, const AwqGroup& group,
                                  const std::string& source, std::string_view pass) {
  const InputStats* s = stats.Find(group.weights[0]);
  for (const std::string& n : group.weights) {
    const InputStats* sn = stats.Find(n);
    if (!sn) Fail("{}: {}: no calibration statistics for {}", source, pass, n);
    if (sn != s) Fail("{}: {}: {} and {} should share one input's statistics", source, pass, group.weights[0], n);
    const int64_t C = GroupTensor(weights, n, source, pass).ne[0];
    if (sn->columns != C)
      Fail("{}: calibration statistics for {} have {} columns, the tensor {}", source, n, sn->columns, C);
  }
  return *s;
}

namespace {

// Searches group g of out.model (earlier groups' scales already folded in) on `stats` and folds
// its scale; a group that is kept or has nothing quantized is skipped (s = 1).
AwqGroupChoice SearchAndFold(AwqFolded& out, const AwqGroup& g, const ActivationStats& stats,
                             const std::function<std::optional<DType>(const Tensor&)>& target, const AwqOptions& opt) {
  const std::string& source = out.model.source;
  const Weights& w = out.model.weights;
  AwqGroupChoice choice{g, false, {}};
  const std::optional<std::vector<DType>> types = GroupTargets(w, g, target, source, "awq");
  const bool quantized = types && std::any_of(types->begin(), types->end(), [](DType t) { return Traits(t).quantized; });
  if (!quantized) return choice;
  const InputStats& s = GroupInputStats(stats, w, g, source, "awq");
  std::vector<std::vector<float>> data;
  std::vector<AwqMember> members;
  for (size_t i = 0; i < g.weights.size(); ++i) {
    const Tensor& t = GroupTensor(w, g.weights[i], source, "awq");
    data.push_back(DequantizeAll(t));
    members.push_back({nullptr, t.nrows(), (*types)[i]});
  }
  for (size_t i = 0; i < members.size(); ++i) members[i].w = data[i].data();
  choice.result = AwqSearchScale(members, s, opt);
  choice.searched = true;
  if (choice.result.alpha != 0.0) FoldAwqScale(out.model.weights, g, choice.result.scale);
  return choice;
}

}  // namespace

AwqFolded AwqScaleModel(const Model& model, const ActivationStats& stats,
                        const std::function<std::optional<DType>(const Tensor&)>& target, const AwqOptions& opt) {
  AwqFolded out{model, {}};
  for (const AwqGroup& g : AwqGroups(model)) out.groups.push_back(SearchAndFold(out, g, stats, target, opt));
  return out;
}

AwqFolded AwqScaleModelStaged(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                              const StatsOptions& stats_opt,
                              const std::function<std::optional<DType>(const Tensor&)>& target, const AwqOptions& opt,
                              ActivationStats* stats_out) {
  AwqFolded out{model, {}};
  const std::vector<AwqGroup> groups = AwqGroups(model);
  std::map<std::string, size_t> group_of;  // first weight -> group
  for (size_t i = 0; i < groups.size(); ++i) group_of[groups[i].weights.front()] = i;
  std::vector<std::optional<AwqGroupChoice>> chosen(groups.size());
  StatsOptions so = stats_opt;
  so.hessian = true;
  so.keep_hessians = false;
  // The pass runs the unfolded model: folding keeps the function, so every group's input is the
  // one the folded model computes (the search wants the unscaled input's statistics).
  ActivationStats stats =
      CollectActivationStatsStaged(model, samples, so, [&](int, std::span<const std::string> weights, const ActivationStats& st) {
        for (const std::string& name : weights) {
          const auto it = group_of.find(name);
          if (it == group_of.end() || chosen[it->second]) continue;
          chosen[it->second] = SearchAndFold(out, groups[it->second], st, target, opt);
        }
      });
  for (size_t i = 0; i < groups.size(); ++i) {
    if (!chosen[i]) Fail("{}: awq: the calibration pass never reached {}", model.source, groups[i].weights.front());
    out.groups.push_back(std::move(*chosen[i]));
  }
  if (stats_out) *stats_out = std::move(stats);
  return out;
}

}  // namespace smelt
