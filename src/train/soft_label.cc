#include "train/soft_label.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "train/ops.h"

namespace smelt::train {
namespace {

// log softmax(z / τ) of one row, in double.
void LogSoftmaxScaled(const float* z, int64_t V, double inv_tau, double* out) {
  double mx = -INFINITY;
  for (int64_t j = 0; j < V; ++j) mx = std::max(mx, (double)z[j] * inv_tau);
  double sum = 0.0;
  for (int64_t j = 0; j < V; ++j) sum += std::exp((double)z[j] * inv_tau - mx);
  const double lse = mx + std::log(sum);
  for (int64_t j = 0; j < V; ++j) out[j] = (double)z[j] * inv_tau - lse;
}

// The divergence of one row and g = ∂D/∂q (for the skew forms) or the row's loss with the
// gradient with respect to z/τ written straight into dz (forward and reverse KL).
// lp, lq: log p (teacher) and log q (student). dz receives ∂D/∂(z/τ).
double Row(const double* lp, const double* lq, int64_t V, const SoftLabelOptions& o, double* dz) {
  double d = 0.0;
  switch (o.divergence) {
    case Divergence::kForward: {
      // KL(p‖q) = Σ p (log p - log q); ∂/∂(z/τ) = q - p.
      for (int64_t j = 0; j < V; ++j) {
        const double p = std::exp(lp[j]), q = std::exp(lq[j]);
        if (p > 0.0) d += p * (lp[j] - lq[j]);
        dz[j] = q - p;
      }
      return d;
    }
    case Divergence::kReverse: {
      // KL(q‖p) = Σ q (log q - log p); ∂/∂(z/τ)_j = q_j (r_j - Σ q r), r = log q - log p.
      double mean = 0.0;
      for (int64_t j = 0; j < V; ++j) {
        const double q = std::exp(lq[j]), r = lq[j] - lp[j];
        d += q * r;
        mean += q * r;
        dz[j] = r;
      }
      for (int64_t j = 0; j < V; ++j) dz[j] = std::exp(lq[j]) * (dz[j] - mean);
      return d;
    }
    case Divergence::kSkewForward:
    case Divergence::kSkewReverse: {
      // g_j = ∂D/∂q_j, then through the softmax: ∂/∂(z/τ)_j = q_j (g_j - Σ q g).
      const double lam = o.skew;
      const bool fwd = o.divergence == Divergence::kSkewForward;
      double mean = 0.0;
      for (int64_t j = 0; j < V; ++j) {
        const double p = std::exp(lp[j]), q = std::exp(lq[j]);
        double g;
        if (fwd) {
          // KL(p ‖ m), m = λp + (1-λ)q: Σ p (log p - log m); ∂/∂q_j = -(1-λ) p_j / m_j.
          const double m = lam * p + (1.0 - lam) * q;
          if (p > 0.0) d += p * (lp[j] - std::log(m));
          g = m > 0.0 ? -(1.0 - lam) * p / m : 0.0;
        } else {
          // KL(q ‖ m), m = λq + (1-λ)p: Σ q (log q - log m); ∂/∂q_j = log q_j + 1 - log m_j - λ q_j / m_j
          // (the constant 1 cancels through the softmax and is left out).
          const double m = lam * q + (1.0 - lam) * p;
          const double lm = std::log(m);
          if (q > 0.0) d += q * (lq[j] - lm);
          g = m > 0.0 ? lq[j] - lm - lam * q / m : 0.0;
        }
        dz[j] = g;
        mean += q * g;
      }
      for (int64_t j = 0; j < V; ++j) dz[j] = std::exp(lq[j]) * (dz[j] - mean);
      return d;
    }
  }
  return d;
}

}  // namespace

Divergence ParseDivergence(const std::string& name) {
  for (Divergence d : {Divergence::kForward, Divergence::kReverse, Divergence::kSkewForward, Divergence::kSkewReverse})
    if (name == DivergenceName(d)) return d;
  Fail("divergence '{}': expected kl, reverse-kl, skew-kl or skew-reverse-kl", name);
}

const char* DivergenceName(Divergence d) {
  switch (d) {
    case Divergence::kForward: return "kl";
    case Divergence::kReverse: return "reverse-kl";
    case Divergence::kSkewForward: return "skew-kl";
    case Divergence::kSkewReverse: return "skew-reverse-kl";
  }
  return "?";
}

double SoftLabelLoss(const float* student, const float* teacher, std::span<const int32_t> targets, int64_t V,
                     const SoftLabelOptions& opt, float scale, float* grad, int threads) {
  if (!(opt.temperature > 0.0f)) Fail("soft-label loss: temperature {} must be positive", opt.temperature);
  if (!(opt.skew >= 0.0f && opt.skew < 1.0f)) Fail("soft-label loss: skew {} must be in [0, 1)", opt.skew);
  const int64_t N = (int64_t)targets.size();
  const double tau = opt.temperature, inv_tau = 1.0 / tau;
  std::vector<double> row_loss((size_t)N, 0.0);
#pragma omp parallel num_threads(N * V < (int64_t{1} << 15) ? 1 : threads)
  {
    std::vector<double> lp((size_t)V), lq((size_t)V), dz((size_t)V);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; ++r) {
      if (targets[r] == kIgnoreIndex) continue;
      LogSoftmaxScaled(teacher + r * V, V, inv_tau, lp.data());
      LogSoftmaxScaled(student + r * V, V, inv_tau, lq.data());
      row_loss[r] = tau * tau * Row(lp.data(), lq.data(), V, opt, dz.data());
      if (!grad) continue;
      // ∂(τ² D)/∂z = τ² · (1/τ) · ∂D/∂(z/τ).
      float* g = grad + r * V;
      const double k = (double)scale * tau;
      for (int64_t j = 0; j < V; ++j) g[j] += (float)(k * dz[j]);
    }
  }
  double loss = 0.0;
  for (double l : row_loss) loss += l;
  return loss;
}

}  // namespace smelt::train
