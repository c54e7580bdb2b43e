#include "train/optim.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace smelt::train {

void AdamW::Step(std::span<float> params, std::span<const float> grads, const std::vector<ParamSlice>& slices,
                 float lr, int threads) {
  SMELT_ASSERT(params.size() == m_.size() && grads.size() == m_.size());
  ++t_;
  const float b1 = opt_.beta1, b2 = opt_.beta2;
  const float c1 = (float)(1.0 - std::pow((double)b1, (double)t_));
  const float c2 = (float)(1.0 - std::pow((double)b2, (double)t_));
  for (const ParamSlice& s : slices) {
    const float wd = s.decay ? opt_.weight_decay : 0.0f;
    float* w = params.data() + s.offset;
    const float* g = grads.data() + s.offset;
    float* m = m_.data() + s.offset;
    float* v = v_.data() + s.offset;
    const int64_t n = (int64_t)s.size;
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      const float mhat = m[i] / c1, vhat = v[i] / c2;
      w[i] -= lr * (mhat / (std::sqrt(vhat) + opt_.eps) + wd * w[i]);
    }
  }
}

void AdamW::Restore(int64_t step, std::vector<float> m, std::vector<float> v) {
  if (m.size() != m_.size() || v.size() != v_.size() || step < 0)
    Fail("AdamW state: {} and {} moments at step {} for {} parameters", m.size(), v.size(), step, m_.size());
  t_ = step;
  m_ = std::move(m);
  v_ = std::move(v);
}

float LrSchedule::At(int64_t s) const {
  if (s < warmup) return lr * (float)(s + 1) / (float)warmup;
  const double span = (double)std::max<int64_t>(1, total - warmup);
  const double p = std::clamp((double)(s - warmup) / span, 0.0, 1.0);
  const double lo = (double)lr * min_lr_ratio;
  return (float)(lo + (lr - lo) * 0.5 * (1.0 + std::cos(std::numbers::pi * p)));
}

double ClipGradNorm(std::span<float> grads, float max_norm) {
  double ss = 0.0;
  for (float g : grads) ss += (double)g * g;
  const double norm = std::sqrt(ss);
  if (max_norm > 0.0f && norm > max_norm) {
    const float scale = (float)(max_norm / norm);
    for (float& g : grads) g *= scale;
  }
  return norm;
}

}  // namespace smelt::train
