#include "compress/smoothquant.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>

#include "core/error.h"
#include "formats/types.h"

namespace smelt {

std::vector<float> SmoothQuantScale(std::span<const float> act_max, std::span<const float> weight_max, float alpha) {
  SMELT_ASSERT(act_max.size() == weight_max.size());
  std::vector<float> s(act_max.size(), 1.0f);
  for (size_t c = 0; c < s.size(); ++c) {
    if (!(act_max[c] > 0) || !(weight_max[c] > 0)) continue;
    const double v = std::pow((double)act_max[c], alpha) / std::pow((double)weight_max[c], 1.0 - alpha);
    s[c] = (float)std::clamp(v, 1e-5, 1e5);
  }
  return s;
}

namespace {

// max over driven channels / min over driven channels of max|x_c|.
double Spread(std::span<const float> m) {
  float lo = 0, hi = 0;
  for (float v : m)
    if (v > 0) lo = lo == 0 ? v : std::min(lo, v), hi = std::max(hi, v);
  return lo > 0 ? (double)hi / lo : 0.0;
}

// The statistics of x_c / s_c.
std::shared_ptr<InputStats> ScaledStats(const InputStats& in, std::span<const float> s) {
  auto out = std::make_shared<InputStats>(in);
  const int64_t C = in.columns;
  for (int64_t c = 0; c < C; ++c) {
    if (!out->sum_sq.empty()) out->sum_sq[c] /= (double)s[c] * s[c];
    if (!out->sum_abs.empty()) out->sum_abs[c] /= s[c];
    if (!out->max_abs.empty()) out->max_abs[c] /= s[c];
  }
  if (!out->hessian.empty())
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j < C; ++j) out->hessian[i * C + j] /= (double)s[i] * s[j];
  return out;
}

}  // namespace

SmoothQuantResult SmoothQuantModel(const Model& model, const ActivationStats& stats, float alpha,
                                   const std::function<std::optional<DType>(const Tensor&)>& target) {
  SmoothQuantResult out{model, stats, {}};
  const Weights& w = out.model.weights;
  auto get = [&](const std::string& n) -> const Tensor& { return GroupTensor(w, n, model.source, "smoothquant"); };
  // Inputs already replaced, so that entries shared by several weights are scaled once.
  std::map<const InputStats*, std::shared_ptr<InputStats>> scaled;
  for (const AwqGroup& g : AwqGroups(model)) {
    SmoothGroupChoice choice{g};
    if (!GroupTargets(w, g, target, model.source, "smoothquant")) {
      out.groups.push_back(std::move(choice));
      continue;
    }
    const InputStats* s = &GroupInputStats(stats, w, g, model.source, "smoothquant");
    if (s->max_abs.size() != (size_t)s->columns)
      Fail("{}: smoothquant: the statistics for {} lack max |x| per column", model.source, g.weights[0]);
    const int64_t C = s->columns;
    std::vector<float> weight_max(C, 0.0f);
    for (const std::string& n : g.weights) {
      const std::vector<float> v = DequantizeAll(get(n));
      for (size_t i = 0; i < v.size(); ++i) weight_max[i % C] = std::max(weight_max[i % C], std::fabs(v[i]));
    }
    const std::vector<float> scale = SmoothQuantScale(s->max_abs, weight_max, alpha);
    FoldAwqScale(out.model.weights, g, scale);
    auto& entry = scaled[s];
    if (!entry) entry = ScaledStats(*s, scale);
    for (const std::string& n : g.weights) out.stats.by_weight[n] = entry;
    choice.smoothed = true;
    choice.act_spread_before = Spread(s->max_abs);
    choice.act_spread_after = Spread(entry->max_abs);
    out.groups.push_back(std::move(choice));
  }
  return out;
}

}  // namespace smelt
