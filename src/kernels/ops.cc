#include "kernels/ops.h"

#include <algorithm>
#include <cmath>

namespace smelt {

float RmsScale(const float* x, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += (double)x[i] * (double)x[i];
  return 1.0f / std::sqrt((float)(ss / (double)n) + eps);
}

void RmsNorm(float* out, const float* x, const float* w, int64_t n, float eps) {
  const float scale = RmsScale(x, n, eps);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * scale) * w[i];
}

void Softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float max = x[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = (float)(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void ReferenceSwiGlu(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = Silu(gate[i]) * up[i];
}

void SwiGlu(float* out, const float* gate, const float* up, int64_t n) {
  static const SwiGluFn fn = Avx512SwiGlu() ? Avx512SwiGlu() : ReferenceSwiGlu;
  fn(out, gate, up, n);
}

void AddInPlace(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

}  // namespace smelt
