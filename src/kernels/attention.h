#pragma once
// Reference scaled dot-product attention of one query head over cached keys and values:
//   out = Σ_j softmax_j(scale · q·k_j) · v_j,   j < n_keys
// Causality is the caller's: it passes only the keys a query may see (positions 0..pos).
//
// Two ways to compute it:
//   AttendHead: the plain two-pass softmax over a buffer of every key's score (the reference).
//   AttendHeadOnline: the online softmax (Milakov & Gimelshein 2018; FlashAttention's
//     recurrence): keys in tiles of kAttnTile, a running maximum m, sum l and unnormalized output
//     acc, rescaled by exp(m_old − m_new) when a tile raises the maximum; out = acc / l. No buffer
//     grows with the number of keys. Tiles start at fixed key indices (multiples of kAttnTile),
//     so a query's result depends only on its keys, never on what else is computed with it.
#include <cstdint>

namespace smelt {

// Keys per tile of the online softmax.
inline constexpr int64_t kAttnTile = 64;

// q: (head_dim); k, v: n_keys rows, row j starting at k + j * stride (stride ≥ head_dim floats,
// so one head of a (pos, kv_dim) cache is addressed directly); out: (head_dim);
// scores: scratch of n_keys floats.
void AttendHead(const float* q, const float* k, const float* v, int64_t n_keys, int64_t stride, int head_dim,
                float scale, float* out, float* scores);

// The running state of one query head's online softmax: start it with OnlineSoftmax::Start.
struct OnlineSoftmax {
  float m;  // largest score so far
  float l;  // Σ exp(score − m) so far
  // Sets m = −∞, l = 0 and acc[head_dim] = 0.
  static OnlineSoftmax Start(float* acc, int head_dim);
  // Where a tile's largest score passes m: what came before shrinks by exp(m − tile_max) (l and
  // acc[head_dim]), and m becomes tile_max. Every tile step's twin calls it.
  void Raise(float tile_max, float* acc, int head_dim);
};

// Folds keys/values rows [0, n) (n ≤ kAttnTile; row j at k + j * stride) into `s` and acc: the
// twin this CPU runs (Avx512AttendTile where the CPU has AVX-512, else the reference).
void AttendTile(const float* q, const float* k, const float* v, int64_t n, int64_t stride, int head_dim, float scale,
                OnlineSoftmax& s, float* acc);

using AttendTileFn = void (*)(const float* q, const float* k, const float* v, int64_t n, int64_t stride, int head_dim,
                              float scale, OnlineSoftmax& s, float* acc);
// The plain-loop reference of one tile step.
void ReferenceAttendTile(const float* q, const float* k, const float* v, int64_t n, int64_t stride, int head_dim,
                         float scale, OnlineSoftmax& s, float* acc);
// The AVX-512 twin (kernels/attention_avx512.cc; valid only where CpuHasAvx512F()); nullptr where
// not built. Another order of sums and its own exp: it agrees with the reference within rounding
// bounds, not bit for bit.
AttendTileFn Avx512AttendTile();

// acc[head_dim] /= s.l: the attention output.
void FinishAttend(const OnlineSoftmax& s, float* acc, int head_dim);

// AttendHead by the online softmax over tiles of kAttnTile keys (no scores buffer).
void AttendHeadOnline(const float* q, const float* k, const float* v, int64_t n_keys, int64_t stride, int head_dim,
                      float scale, float* out);

}  // namespace smelt
