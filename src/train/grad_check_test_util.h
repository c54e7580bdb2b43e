#pragma once
// Finite-difference gradient checks for the training tests.
//
// For a scalar f computed in fp32 (accumulated in double at the end), the central difference
// D(h) = (f(x+h) - f(x-h)) / 2h differs from f' by truncation, about h²/6 · f''', and by the
// rounding noise of f divided by h. The tolerance of each checked coordinate is derived from
// both: |D(h) - D(2h)| estimates three times the truncation error at h (Richardson), and
// `noise` (the caller's bound on |f(x) - f_exact(x)|, from the norms of the terms it sums times
// the fp32 unit roundoff) gives noise / h. An analytic gradient passes when it is within twice
// that of D(h).
#include <gtest/gtest.h>

#include "tiny_models.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace smelt::train::testing {

inline constexpr double kF32Eps = std::numeric_limits<float>::epsilon();

// n values drawn from N(0, scale²) with a fixed seed (tests/tiny_models.h's generator).
inline std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  return tiny::RandomVector(n, seed, scale);
}

// Checks analytic[i] against central differences of f at coordinates `indices` of x (all of
// them when empty). `h` is the step relative to max(|x_i|, 1).
inline void ExpectGradient(const std::function<double()>& f, float* x, size_t n, const float* analytic,
                           double noise, const std::string& what, std::vector<size_t> indices = {},
                           double h_rel = 1e-2) {
  if (indices.empty())
    for (size_t i = 0; i < n; ++i) indices.push_back(i);
  int failures = 0;
  for (size_t i : indices) {
    const float x0 = x[i];
    const double h = h_rel * std::max(1.0, (double)std::fabs(x0));
    auto diff = [&](double step) {
      // The step actually taken is what fp32 can represent.
      const float up = (float)(x0 + step), down = (float)(x0 - step);
      x[i] = up;
      const double fu = f();
      x[i] = down;
      const double fd = f();
      x[i] = x0;
      return (fu - fd) / ((double)up - (double)down);
    };
    const double d1 = diff(h), d2 = diff(2 * h);
    const double tol = 2.0 * (std::fabs(d1 - d2) + noise / h) + 1e-12;
    if (std::fabs(analytic[i] - d1) > tol && ++failures <= 5)
      ADD_FAILURE() << what << "[" << i << "]: analytic " << analytic[i] << ", central difference " << d1
                    << " (2h: " << d2 << "), tolerance " << tol;
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << indices.size() << " coordinates off";
}

// Σ r_i y_i in double, and Σ |r_i y_i| (the magnitude the rounding noise scales with).
inline double Project(const std::vector<float>& r, const float* y, double* magnitude = nullptr) {
  double s = 0.0, a = 0.0;
  for (size_t i = 0; i < r.size(); ++i) {
    s += (double)r[i] * y[i];
    a += std::fabs((double)r[i] * y[i]);
  }
  if (magnitude) *magnitude = a;
  return s;
}

}  // namespace smelt::train::testing
