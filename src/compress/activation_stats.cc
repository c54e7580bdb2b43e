#include "compress/activation_stats.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "model/llama.h"
#include "runtime/session.h"

namespace smelt {
namespace {

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
      s = std::make_shared<InputStats>();
      s->columns = C;
      s->sum_sq.assign(C, 0.0);
      s->sum_abs.assign(C, 0.0);
      s->max_abs.assign(C, 0.0f);
      if (hessian_) s->hessian.assign(C * C, 0.0);
      out_.by_weight.emplace(w.name, s);
    }
    s->rows += T;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        const double v = x[t * C + c];
        s->sum_sq[c] += v * v;
        s->sum_abs[c] += std::abs(v);
        s->max_abs[c] = std::max(s->max_abs[c], std::abs(x[t * C + c]));
      }
    if (hessian_) {
      // Σ x xᵀ of this batch in f32 (T terms), added to the f64 total: the upper triangle by
      // SYRK, mirrored.
      scratch_.assign(C * C, 0.0f);
      cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)C, (int)T, 1.0f, x, (int)C, 0.0f, scratch_.data(),
                  (int)C);
      for (int64_t i = 0; i < C; ++i)
        for (int64_t j = i; j < C; ++j) {
          s->hessian[i * C + j] += scratch_[i * C + j];
          if (j != i) s->hessian[j * C + i] += scratch_[i * C + j];
        }
    }
    last_x_ = x, last_T_ = T, last_layer_ = layer, last_ = s;
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
  return out;
}

}  // namespace smelt
