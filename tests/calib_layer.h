#pragma once
// A linear layer with synthetic calibration inputs, for the tests of the second-order passes
// (GPTQ, SparseGPT): W (oc, c), inputs X (n, c) shaped as in a transformer (a few dominant
// directions shared by all samples, per-channel scales that vary widely, some outlier channels),
// and H = 2/n XᵀX.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace smelt::testing {

struct CalibLayer {
  int64_t oc, c, n;
  std::vector<float> w;
  std::vector<float> x;
  std::vector<double> h;
};

// dead: channels that are always zero.
inline CalibLayer MakeCalibLayer(int64_t oc, int64_t c, int64_t n, uint32_t seed,
                                 const std::vector<int64_t>& dead = {}) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  CalibLayer l{oc, c, n, std::vector<float>((size_t)(oc * c)), std::vector<float>((size_t)(n * c)),
               std::vector<double>((size_t)(c * c), 0.0)};
  for (float& v : l.w) v = 0.02f * g(rng);
  constexpr int kDirections = 4;
  std::vector<float> dirs((size_t)(kDirections * c)), chan_scale((size_t)c);
  for (float& v : dirs) v = g(rng);
  for (int64_t j = 0; j < c; ++j) chan_scale[(size_t)j] = std::exp(0.5f * g(rng)) * (j % 29 == 3 ? 8.0f : 1.0f);
  for (int64_t s = 0; s < n; ++s) {
    float z[kDirections];
    for (float& v : z) v = g(rng);
    for (int64_t j = 0; j < c; ++j) {
      float v = g(rng);
      for (int d = 0; d < kDirections; ++d) v += z[d] * dirs[(size_t)(d * c + j)];
      l.x[(size_t)(s * c + j)] = v * chan_scale[(size_t)j];
    }
  }
  for (int64_t j : dead) {
    for (int64_t s = 0; s < n; ++s) l.x[(size_t)(s * c + j)] = 0.0f;
  }
  for (int64_t s = 0; s < n; ++s) {
    const float* xs = &l.x[(size_t)(s * c)];
    for (int64_t i = 0; i < c; ++i) {
      for (int64_t j = 0; j < c; ++j) l.h[(size_t)(i * c + j)] += 2.0 / (double)n * xs[i] * xs[j];
    }
  }
  return l;
}

// Σ_rows (W − Ŵ)_r (H + λI) (W − Ŵ)_rᵀ with λ = damp · mean(diag(H)): the quadratic that GPTQ's
// and SparseGPT's proxy losses stand for, evaluated directly on decoded weights (with damp 0,
// 2/n times the layer's squared output error over X).
inline double DampedQuadratic(const CalibLayer& l, const std::vector<float>& w_hat, double damp) {
  double mean_diag = 0;
  for (int64_t i = 0; i < l.c; ++i) mean_diag += l.h[(size_t)(i * l.c + i)] / (double)l.c;
  double quadratic = 0;
  std::vector<double> d((size_t)l.c);
  for (int64_t o = 0; o < l.oc; ++o) {
    for (int64_t j = 0; j < l.c; ++j) d[(size_t)j] = (double)l.w[(size_t)(o * l.c + j)] - w_hat[(size_t)(o * l.c + j)];
    for (int64_t i = 0; i < l.c; ++i) {
      for (int64_t j = 0; j < l.c; ++j) {
        const double hij = l.h[(size_t)(i * l.c + j)] + (i == j ? damp * mean_diag : 0.0);
        quadratic += d[(size_t)i] * hij * d[(size_t)j];
      }
    }
  }
  return quadratic;
}

}  // namespace smelt::testing
