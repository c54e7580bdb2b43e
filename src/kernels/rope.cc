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

void RopeHead(float* dst, const float* src, int head_dim, const RopeRotation& r) {
  const int half = r.rope_dim / 2;
  // Pair i is (x[i * step], x[i * step + offset]).
  const int step = r.neox ? 1 : 2;
  const int offset = r.neox ? half : 1;
  if (dst != src)
    for (int i = r.rope_dim; i < head_dim; ++i) dst[i] = src[i];  // past rope_dim: unchanged
  for (int i = 0; i < half; ++i) {
    const float a0 = src[i * step], b0 = src[i * step + offset];
    dst[i * step] = a0 * r.cos[i] - b0 * r.sin[i];
    dst[i * step + offset] = a0 * r.sin[i] + b0 * r.cos[i];
  }
}

void ApplyRope(float* x, int n_heads, int head_dim, int rope_dim, const float* cos, const float* sin, bool neox) {
  const RopeRotation r{cos, sin, rope_dim, neox};
  for (int h = 0; h < n_heads; ++h) RopeHead(x + (int64_t)h * head_dim, x + (int64_t)h * head_dim, head_dim, r);
}

}  // namespace smelt
