#pragma once
// Reference scaled dot-product attention of one query head over cached keys and values:
//   out = Σ_j softmax_j(scale · q·k_j) · v_j,   j < n_keys
// Causality is the caller's: it passes only the keys a query may see (positions 0..pos).
#include <cstdint>

namespace smelt {

// q: (head_dim); k, v: n_keys rows, row j starting at k + j * stride (stride ≥ head_dim floats,
// so one head of a (pos, kv_dim) cache is addressed directly); out: (head_dim);
// scores: scratch of n_keys floats.
void AttendHead(const float* q, const float* k, const float* v, int64_t n_keys, int64_t stride, int head_dim,
                float scale, float* out, float* scores);

}  // namespace smelt
