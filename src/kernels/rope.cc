#include "kernels/rope.h"

#include <cmath>

namespace smelt {

std::vector<float> RopeBaseFrequencies(int rope_dim, float base) {
  std::vector<float> inv(rope_dim / 2);
  for (int i = 0; i < rope_dim / 2; ++i) inv[i] = 1.0f / std::pow(base, (float)(2 * i) / (float)rope_dim);
  return inv;
}

void RopeAngles(int64_t pos, const float* inv_freq, int n_pairs, float* cos_out, float* sin_out) {
  for (int i = 0; i < n_pairs; ++i) {
    const float angle = (float)pos * inv_freq[i];
    cos_out[i] = std::cos(angle);
    sin_out[i] = std::sin(angle);
  }
}

void ApplyRope(float* x, int n_heads, int head_dim, int rope_dim, const float* cos, const float* sin, bool neox) {
  const int half = rope_dim / 2;
  // Pair i is (x[i * step], x[i * step + offset]).
  const int step = neox ? 1 : 2;
  const int offset = neox ? half : 1;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + (int64_t)h * head_dim;
    for (int i = 0; i < half; ++i) {
      float& a = v[i * step];
      float& b = v[i * step + offset];
      const float a0 = a, b0 = b;
      a = a0 * cos[i] - b0 * sin[i];
      b = a0 * sin[i] + b0 * cos[i];
    }
  }
}

}  // namespace smelt
