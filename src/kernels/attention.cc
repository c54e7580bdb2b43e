#include "kernels/attention.h"

#include "kernels/ops.h"

namespace smelt {

void AttendHead(const float* q, const float* k, const float* v, int64_t n_keys, int64_t stride, int head_dim,
                float scale, float* out, float* scores) {
  for (int64_t j = 0; j < n_keys; ++j) scores[j] = DotF32(q, k + j * stride, head_dim) * scale;
  Softmax(scores, n_keys);
  // out = Σ_j scores[j]·v_j, eight dimensions at a time in registers (head sizes are multiples
  // of 8 in every supported family), any remainder one dimension at a time.
  constexpr int kDims = 8;
  int d0 = 0;
  for (; d0 + kDims <= head_dim; d0 += kDims) {
    float acc[kDims] = {};
    for (int64_t j = 0; j < n_keys; ++j) {
      const float a = scores[j];
      const float* vj = v + j * stride + d0;
      for (int e = 0; e < kDims; ++e) acc[e] += a * vj[e];
    }
    for (int e = 0; e < kDims; ++e) out[d0 + e] = acc[e];
  }
  for (; d0 < head_dim; ++d0) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n_keys; ++j) acc += scores[j] * v[j * stride + d0];
    out[d0] = acc;
  }
}

}  // namespace smelt
