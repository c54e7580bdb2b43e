#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "kernels/ops.h"

namespace smelt {
namespace {

// out[d] (+)= Σ_j p[j]·v_j[d], eight dimensions at a time in registers (head sizes are multiples
// of 8 in every supported family), any remainder one dimension at a time.
template <bool kAccumulate>
void WeightedValues(const float* p, const float* v, int64_t n, int64_t stride, int head_dim, float* out) {
  constexpr int kDims = 8;
  int d0 = 0;
  for (; d0 + kDims <= head_dim; d0 += kDims) {
    float acc[kDims] = {};
    for (int64_t j = 0; j < n; ++j) {
      const float a = p[j];
      const float* vj = v + j * stride + d0;
      for (int e = 0; e < kDims; ++e) acc[e] += a * vj[e];
    }
    for (int e = 0; e < kDims; ++e) out[d0 + e] = kAccumulate ? out[d0 + e] + acc[e] : acc[e];
  }
  for (; d0 < head_dim; ++d0) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n; ++j) acc += p[j] * v[j * stride + d0];
    out[d0] = kAccumulate ? out[d0] + acc : acc;
  }
}

}  // namespace

void AttendHead(const float* q, const float* k, const float* v, int64_t n_keys, int64_t stride, int head_dim,
                float scale, float* out, float* scores) {
  for (int64_t j = 0; j < n_keys; ++j) scores[j] = DotF32(q, k + j * stride, head_dim) * scale;
  Softmax(scores, n_keys);
  WeightedValues<false>(scores, v, n_keys, stride, head_dim, out);
}

OnlineSoftmax OnlineSoftmax::Start(float* acc, int head_dim) {
  std::fill(acc, acc + head_dim, 0.0f);
  return {-INFINITY, 0.0f};
}

void OnlineSoftmax::Raise(float tile_max, float* acc, int head_dim) {
  if (!(tile_max > m)) return;  // a NaN maximum changes nothing
  const float shrink = std::exp(m - tile_max);
  l *= shrink;
  for (int d = 0; d < head_dim; ++d) acc[d] *= shrink;
  m = tile_max;
}

void ReferenceAttendTile(const float* q, const float* k, const float* v, int64_t n, int64_t stride, int head_dim,
                         float scale, OnlineSoftmax& s, float* acc) {
  float p[kAttnTile];
  float tile_max = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    p[j] = DotF32(q, k + j * stride, head_dim) * scale;
    tile_max = std::max(tile_max, p[j]);
  }
  s.Raise(tile_max, acc, head_dim);
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum += (p[j] = std::exp(p[j] - s.m));
  s.l += sum;
  WeightedValues<true>(p, v, n, stride, head_dim, acc);
}

void AttendTile(const float* q, const float* k, const float* v, int64_t n, int64_t stride, int head_dim, float scale,
                OnlineSoftmax& s, float* acc) {
  static const AttendTileFn tile = CpuHasAvx512F() && Avx512AttendTile() ? Avx512AttendTile() : ReferenceAttendTile;
  tile(q, k, v, n, stride, head_dim, scale, s, acc);
}

void FinishAttend(const OnlineSoftmax& s, float* acc, int head_dim) {
  const float inv = 1.0f / s.l;
  for (int d = 0; d < head_dim; ++d) acc[d] *= inv;
}

void AttendHeadOnline(const float* q, const float* k, const float* v, int64_t n_keys, int64_t stride, int head_dim,
                      float scale, float* out) {
  OnlineSoftmax s = OnlineSoftmax::Start(out, head_dim);
  for (int64_t j0 = 0; j0 < n_keys; j0 += kAttnTile)
    AttendTile(q, k + j0 * stride, v + j0 * stride, std::min(kAttnTile, n_keys - j0), stride, head_dim, scale, s, out);
  FinishAttend(s, out, head_dim);
}

}  // namespace smelt
