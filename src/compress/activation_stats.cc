#include "compress/activation_stats.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "model/llama.h"
#include "model/llama_staged.h"
#include "runtime/session.h"

namespace smelt {
namespace {

std::shared_ptr<InputStats> NewStats(int64_t C, bool hessian) {
  auto s = std::make_shared<InputStats>();
  s->columns = C;
  s->sum_sq.assign(C, 0.0);
  s->sum_abs.assign(C, 0.0);
  s->max_abs.assign(C, 0.0f);
  if (hessian) s->hessian.assign(C * C, 0.0);
  return s;
}

// Adds the rows x: (T, C) to s. The Hessian's upper triangle only (MirrorHessian completes it):
// Σ x xᵀ of these rows in f32 by SYRK (T terms), added to the f64 total.
void Accumulate(InputStats& s, const float* x, int64_t T, std::vector<float>& scratch) {
  const int64_t C = s.columns;
  s.rows += T;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) {
      const float v = x[t * C + c];
      s.sum_sq[c] += (double)v * v;
      s.sum_abs[c] += std::abs((double)v);
      s.max_abs[c] = std::max(s.max_abs[c], std::abs(v));
    }
  if (s.hessian.empty()) return;
  scratch.resize(C * C);
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)C, (int)T, 1.0f, x, (int)C, 0.0f, scratch.data(), (int)C);
  for (int64_t i = 0; i < C; ++i) {
    double* h = &s.hessian[i * C];
    const float* p = &scratch[i * C];
    for (int64_t j = i; j < C; ++j) h[j] += p[j];
  }
}

// Copies the accumulated upper triangle of s.hessian to the lower one.
void MirrorHessian(InputStats& s) {
  const int64_t C = s.columns;
  if (s.hessian.empty()) return;
  constexpr int64_t kTile = 64;  // tiles keep the transposed writes in cache
  for (int64_t i0 = 0; i0 < C; i0 += kTile)
    for (int64_t j0 = i0; j0 < C; j0 += kTile)
      for (int64_t i = i0; i < std::min(i0 + kTile, C); ++i)
        for (int64_t j = std::max(j0, i + 1); j < std::min(j0 + kTile, C); ++j) s.hessian[j * C + i] = s.hessian[i * C + j];
}

class StatsObserver : public ForwardObserver {
 public:
  StatsObserver(ActivationStats& out, bool hessian) : out_(out), hessian_(hessian) {}

  void OnLinearInput(int layer, const Tensor& w, const float* x, int64_t T) override {
    const int64_t C = w.ne[0];
    std::shared_ptr<InputStats> s;
    auto it = out_.by_weight.find(w.name);
    if (it != out_.by_weight.end()) {
      if (aliases_.count(w.name)) return;  // counted through the weight it shares an input with
      s = it->second;
    } else if (x == last_x_ && T == last_T_ && layer == last_layer_ && last_ && last_->columns == C) {
      // Seen for the first time, fed the very rows the previous weight of its block just got.
      out_.by_weight.emplace(w.name, last_);
      aliases_.insert(w.name);
      return;
    } else {
      s = NewStats(C, hessian_);
      out_.by_weight.emplace(w.name, s);
    }
    Accumulate(*s, x, T, scratch_);
    last_x_ = x, last_T_ = T, last_layer_ = layer, last_ = s;
  }

  // Completes every Hessian once all inputs are in.
  void Finish() {
    for (auto& [name, s] : out_.by_weight)
      if (!aliases_.count(name)) MirrorHessian(*s);
  }

 private:
  ActivationStats& out_;
  bool hessian_;
  const float* last_x_ = nullptr;
  int64_t last_T_ = 0;
  int last_layer_ = -1;
  std::set<std::string> aliases_;
  std::shared_ptr<InputStats> last_;
  std::vector<float> scratch_;
};

// The staged pass's side: each worker slot accumulates its sequences' inputs of the current
// group; when the group is done the slots are summed into one entry (the first weight's; the
// others alias it).
class StagedStats : public StagedObserver {
 public:
  StagedStats(ActivationStats& out, const StatsOptions& opt, const GroupHook& hook)
      : out_(out), opt_(opt), hook_(hook), slots_(std::max(1, opt.threads)) {}

  void OnGroupInput(int slot, int, std::span<const std::string>, const float* x, int64_t T,
                    int64_t columns) override {
    Slot& s = slots_[slot];
    if (!s.part) s.part = NewStats(columns, opt_.hessian);
    Accumulate(*s.part, x, T, s.scratch);
  }

  void OnGroupDone(int layer, std::span<const std::string> weights) override {
    std::shared_ptr<InputStats> sum;
    for (Slot& s : slots_) {
      if (!s.part) continue;
      if (!sum) {
        sum = std::move(s.part);
        continue;
      }
      const InputStats& p = *s.part;
      sum->rows += p.rows;
      for (int64_t c = 0; c < p.columns; ++c) {
        sum->sum_sq[c] += p.sum_sq[c];
        sum->sum_abs[c] += p.sum_abs[c];
        sum->max_abs[c] = std::max(sum->max_abs[c], p.max_abs[c]);
      }
      for (size_t i = 0; i < p.hessian.size(); ++i) sum->hessian[i] += p.hessian[i];
      s.part.reset();
    }
    SMELT_ASSERT(sum);
    MirrorHessian(*sum);
    for (const std::string& w : weights) out_.by_weight[w] = sum;
    if (hook_) hook_(layer, weights, out_);
    if (!opt_.keep_hessians) std::vector<double>().swap(sum->hessian);
  }

 private:
  struct Slot {
    std::shared_ptr<InputStats> part;  // this slot's sums for the current group
    std::vector<float> scratch;
  };
  ActivationStats& out_;
  const StatsOptions& opt_;
  const GroupHook& hook_;
  std::vector<Slot> slots_;
};

}  // namespace

std::vector<float> InputStats::MeanSquare() const {
  std::vector<float> m(columns, 0.0f);
  if (rows > 0)
    for (int64_t c = 0; c < columns; ++c) m[c] = (float)(sum_sq[c] / (double)rows);
  return m;
}

std::vector<float> InputStats::MeanAbs() const {
  std::vector<float> m(columns, 0.0f);
  if (rows > 0 && sum_abs.size() == (size_t)columns)
    for (int64_t c = 0; c < columns; ++c) m[c] = (float)(sum_abs[c] / (double)rows);
  return m;
}

const InputStats* ActivationStats::Find(const std::string& weight) const {
  auto it = by_weight.find(weight);
  return it == by_weight.end() ? nullptr : it->second.get();
}

ActivationStats CollectActivationStats(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                                       const StatsOptions& opt) {
  int max_len = 0;
  for (const auto& s : samples) max_len = std::max(max_len, (int)s.size());
  if (samples.empty() || max_len == 0) Fail("{}: no calibration samples to run", model.source);
  ActivationStats out;
  StatsObserver obs(out, opt.hessian);
  Session session(model, {.threads = opt.threads, .context = max_len, .activations = Activations::kExact});
  session.set_observer(&obs);
  for (size_t i = 0; i < samples.size(); ++i) {
    session.Reset();
    session.Eval(samples[i], /*all_logits=*/true);
    out.tokens += (int64_t)samples[i].size();
    if (opt.progress) opt.progress((int)i + 1, (int)samples.size());
  }
  obs.Finish();
  return out;
}

ActivationStats CollectActivationStatsStaged(const Model& model, const std::vector<std::vector<int32_t>>& samples,
                                             const StatsOptions& opt, const GroupHook& on_group) {
  int64_t tokens = 0;
  for (const auto& s : samples) tokens += (int64_t)s.size();
  if (samples.empty() || tokens == 0) Fail("{}: no calibration samples to run", model.source);
  ActivationStats out;
  StagedStats obs(out, opt, on_group);
  RunStaged(model, samples, obs, {.threads = opt.threads, .progress = opt.progress});
  out.tokens = tokens;
  return out;
}

}  // namespace smelt
