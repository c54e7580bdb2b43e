#include "train/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/blas.h"
#include "kernels/rope.h"

namespace smelt::train {
namespace {

// Threads for a loop of about `work` multiply-adds: small loops run on one, where waking and
// joining a team would cost more than the loop (and much more on a busy machine).
int Workers(int threads, int64_t work) { return work < (int64_t{1} << 15) ? 1 : threads; }

}  // namespace

void EmbeddingForward(const float* table, std::span<const int32_t> tokens, int64_t C, float* out) {
  for (size_t i = 0; i < tokens.size(); ++i) std::copy_n(table + (int64_t)tokens[i] * C, C, out + (int64_t)i * C);
}

void EmbeddingBackward(const float* dout, std::span<const int32_t> tokens, int64_t C, float* dtable) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    float* row = dtable + (int64_t)tokens[i] * C;
    const float* d = dout + (int64_t)i * C;
    for (int64_t c = 0; c < C; ++c) row[c] += d[c];
  }
}

void RmsNormForward(const float* x, const float* w, int64_t N, int64_t C, float eps, float* y, float* rstd,
                    int threads) {
#pragma omp parallel for num_threads(Workers(threads, N * C)) schedule(static)
  for (int64_t r = 0; r < N; ++r) {
    const float* xr = x + r * C;
    double ss = 0.0;
    for (int64_t c = 0; c < C; ++c) ss += (double)xr[c] * xr[c];
    const float s = (float)(1.0 / std::sqrt(ss / (double)C + eps));
    rstd[r] = s;
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = xr[c] * s * w[c];
  }
}

void RmsNormBackward(const float* dy, const float* x, const float* w, const float* rstd, int64_t N, int64_t C,
                     float* dx, float* dw, int threads) {
#pragma omp parallel for num_threads(Workers(threads, 2 * N * C)) schedule(static)
  for (int64_t r = 0; r < N; ++r) {
    const float* xr = x + r * C;
    const float* d = dy + r * C;
    const float s = rstd[r];
    // y_c = x̂_c w_c with x̂ = x·s; ∂s/∂x_j = -s³ x_j / C, so
    // dx_j = s (dy_j w_j) - x̂_j · s · mean_c(dy_c w_c x̂_c).
    double dot = 0.0;
    for (int64_t c = 0; c < C; ++c) dot += (double)d[c] * w[c] * xr[c] * s;
    const float m = (float)(dot / (double)C);
    for (int64_t c = 0; c < C; ++c) dx[r * C + c] = s * (d[c] * w[c] - xr[c] * s * m);
  }
  // Parameter gradient: one pass over rows in order (a fixed summation order).
  for (int64_t r = 0; r < N; ++r)
    for (int64_t c = 0; c < C; ++c) dw[c] += dy[r * C + c] * x[r * C + c] * rstd[r];
}

namespace {

// Runs fn(begin, end) on `threads` consecutive pieces of [0, n), one per thread (each piece's
// sgemm runs on its caller's thread: OpenBLAS is set to one thread around the training step).
template <class Fn>
void Pieces(int64_t n, int threads, Fn fn) {
  const int k = (int)std::min<int64_t>(threads, n);
  if (k <= 1) return fn(int64_t{0}, n);
  const BlasThreads blas(1);
#pragma omp parallel for num_threads(k) schedule(static)
  for (int p = 0; p < k; ++p) fn(n * p / k, n * (p + 1) / k);
}

}  // namespace

void LinearForward(const float* x, const float* W, const float* b, int64_t N, int64_t C, int64_t OC, float* y,
                   int threads) {
  Pieces(N, Workers(threads, N * C * OC), [&](int64_t r0, int64_t r1) {
    if (r1 <= r0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)OC, (int)C, 1.0f, x + r0 * C, (int)C, W,
                (int)C, 0.0f, y + r0 * OC, (int)OC);
    if (b)
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t o = 0; o < OC; ++o) y[r * OC + o] += b[o];
  });
}

void LinearBackward(const float* dy, const float* x, const float* W, int64_t N, int64_t C, int64_t OC, float* dx,
                    bool accumulate_dx, float* dW, float* db, int threads) {
  const int workers = Workers(threads, N * C * OC);
  // dx rows split by rows; dW rows (output channels) split by rows, each summing over all N.
  if (dx)
    Pieces(N, workers, [&](int64_t r0, int64_t r1) {
      if (r1 <= r0) return;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)C, (int)OC, 1.0f, dy + r0 * OC,
                  (int)OC, W, (int)C, accumulate_dx ? 1.0f : 0.0f, dx + r0 * C, (int)C);
    });
  Pieces(OC, workers, [&](int64_t o0, int64_t o1) {
    if (o1 <= o0) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(o1 - o0), (int)C, (int)N, 1.0f, dy + o0, (int)OC, x,
                (int)C, 1.0f, dW + o0 * C, (int)C);
  });
  if (db)
    for (int64_t r = 0; r < N; ++r)
      for (int64_t o = 0; o < OC; ++o) db[o] += dy[r * OC + o];
}

namespace {

// Rotates every row by its position's angles; `direction` -1 turns backwards (sin negated).
void Rotate(float* x, std::span<const int32_t> positions, const RopeShape& s, const float* inv_freq, float direction,
            int threads) {
  const int pairs = s.rope_dim / 2;
  const int64_t N = (int64_t)positions.size(), width = (int64_t)s.heads * s.head_dim;
#pragma omp parallel num_threads(Workers(threads, N * width * 4))
  {
    std::vector<float> cos(pairs), sin(pairs);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; ++r) {
      RopeAngles(positions[r], inv_freq, pairs, cos.data(), sin.data());
      for (float& v : sin) v *= direction;
      ApplyRope(x + r * width, s.heads, s.head_dim, s.rope_dim, cos.data(), sin.data(), s.neox);
    }
  }
}

}  // namespace

void RopeForward(float* x, std::span<const int32_t> positions, const RopeShape& s, const float* inv_freq,
                 int threads) {
  Rotate(x, positions, s, inv_freq, 1.0f, threads);
}

void RopeBackward(float* dx, std::span<const int32_t> positions, const RopeShape& s, const float* inv_freq,
                  int threads) {
  Rotate(dx, positions, s, inv_freq, -1.0f, threads);
}

namespace {

// Causal softmax of row i of the scaled scores (only j <= i count), in place; zeros after i.
void CausalSoftmaxRow(float* p, int64_t i, int64_t T) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j <= i; ++j) mx = std::max(mx, p[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j <= i; ++j) p[j] *= inv;
  std::fill(p + i + 1, p + T, 0.0f);
}

}  // namespace

void AttentionForward(const float* q, const float* k, const float* v, const AttentionShape& s, float* out,
                      float* probs, int threads) {
  const int64_t T = s.T, hd = s.head_dim, Qw = (int64_t)s.heads * hd, KVw = (int64_t)s.kv_heads * hd;
  const int group = s.heads / s.kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
  const BlasThreads blas(1);  // each task's products run on its own thread
#pragma omp parallel for collapse(2) num_threads(Workers(threads, s.B * s.heads * T * T * hd)) schedule(static)
  for (int64_t b = 0; b < s.B; ++b)
    for (int h = 0; h < s.heads; ++h) {
      const int64_t kvh = h / group;
      float* P = probs + (b * s.heads + h) * T * T;
      const float* Q = q + b * T * Qw + h * hd;
      const float* K = k + b * T * KVw + kvh * hd;
      const float* V = v + b * T * KVw + kvh * hd;
      // P = softmax(Q Kᵀ · scale) with the future masked; O = P V.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, scale, Q, (int)Qw, K, (int)KVw,
                  0.0f, P, (int)T);
      for (int64_t i = 0; i < T; ++i) CausalSoftmaxRow(P + i * T, i, T);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, P, (int)T, V, (int)KVw,
                  0.0f, out + b * T * Qw + h * hd, (int)Qw);
    }
}

void AttentionBackward(const float* dout, const float* q, const float* k, const float* v, const float* probs,
                       const AttentionShape& s, float* dq, float* dk, float* dv, int threads, const float* dprobs) {
  const int64_t T = s.T, hd = s.head_dim, Qw = (int64_t)s.heads * hd, KVw = (int64_t)s.kv_heads * hd;
  const int group = s.heads / s.kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
  const BlasThreads blas(1);
  // One task per (sequence, kv head), its query heads in order: dk/dv sums have a fixed order.
#pragma omp parallel for collapse(2) num_threads(Workers(threads, 2 * s.B * s.heads * T * T * hd)) schedule(static)
  for (int64_t b = 0; b < s.B; ++b)
    for (int kvh = 0; kvh < s.kv_heads; ++kvh) {
      std::vector<float> dS((size_t)(T * T));
      const float* K = k + b * T * KVw + kvh * hd;
      const float* V = v + b * T * KVw + kvh * hd;
      float* dK = dk + b * T * KVw + kvh * hd;
      float* dV = dv + b * T * KVw + kvh * hd;
      for (int64_t j = 0; j < T; ++j) std::fill_n(dK + j * KVw, hd, 0.0f), std::fill_n(dV + j * KVw, hd, 0.0f);
      for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        const float* P = probs + (b * s.heads + h) * T * T;
        const float* dO = dout + b * T * Qw + h * hd;
        const float* Q = q + b * T * Qw + h * hd;
        // dV += Pᵀ dO; dP = dO Vᵀ.
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, P, (int)T, dO, (int)Qw,
                    1.0f, dV, (int)KVw);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, 1.0f, dO, (int)Qw, V, (int)KVw,
                    0.0f, dS.data(), (int)T);
        // Softmax backward: dS_ij = P_ij (dP_ij - Σ_j P_ij dP_ij) · scale (zero where P is).
        for (int64_t i = 0; i < T; ++i) {
          const float* p = P + i * T;
          float* d = dS.data() + i * T;
          if (dprobs) {
            const float* e = dprobs + (b * s.heads + h) * T * T + i * T;
            for (int64_t j = 0; j <= i; ++j) d[j] += e[j];
          }
          float pdp = 0.0f;
          for (int64_t j = 0; j <= i; ++j) pdp += p[j] * d[j];
          for (int64_t j = 0; j <= i; ++j) d[j] = p[j] * (d[j] - pdp) * scale;
          std::fill(d + i + 1, d + T, 0.0f);
        }
        // dQ = dS K; dK += dSᵀ Q.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, dS.data(), (int)T, K,
                    (int)KVw, 0.0f, dq + b * T * Qw + h * hd, (int)Qw);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, dS.data(), (int)T, Q,
                    (int)Qw, 1.0f, dK, (int)KVw);
      }
    }
}

void AttentionForwardReference(const float* q, const float* k, const float* v, const AttentionShape& s, float* out,
                               float* probs, int threads) {
  const int64_t T = s.T, hd = s.head_dim, Qw = (int64_t)s.heads * hd, KVw = (int64_t)s.kv_heads * hd;
  const int group = s.heads / s.kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
#pragma omp parallel for collapse(2) num_threads(Workers(threads, s.B * s.heads * T * T * hd)) schedule(static)
  for (int64_t b = 0; b < s.B; ++b)
    for (int h = 0; h < s.heads; ++h) {
      const int64_t kvh = h / group;
      float* P = probs + (b * s.heads + h) * T * T;
      for (int64_t i = 0; i < T; ++i) {
        const float* qi = q + (b * T + i) * Qw + h * hd;
        float* p = P + i * T;
        for (int64_t j = 0; j <= i; ++j) {
          const float* kj = k + (b * T + j) * KVw + kvh * hd;
          float d = 0.0f;
          for (int64_t e = 0; e < hd; ++e) d += qi[e] * kj[e];
          p[j] = d * scale;
        }
        CausalSoftmaxRow(p, i, T);
        float* o = out + (b * T + i) * Qw + h * hd;
        std::fill(o, o + hd, 0.0f);
        for (int64_t j = 0; j <= i; ++j) {
          const float* vj = v + (b * T + j) * KVw + kvh * hd;
          for (int64_t e = 0; e < hd; ++e) o[e] += p[j] * vj[e];
        }
      }
    }
}

void AttentionBackwardReference(const float* dout, const float* q, const float* k, const float* v,
                                const float* probs, const AttentionShape& s, float* dq, float* dk, float* dv,
                                int threads, const float* dprobs) {
  const int64_t T = s.T, hd = s.head_dim, Qw = (int64_t)s.heads * hd, KVw = (int64_t)s.kv_heads * hd;
  const int group = s.heads / s.kv_heads;
  const float scale = 1.0f / std::sqrt((float)hd);
  // One task per (sequence, kv head): the query heads of its group run in order inside it, so
  // the dk/dv sums have no races and a fixed order.
#pragma omp parallel for collapse(2) num_threads(Workers(threads, 2 * s.B * s.heads * T * T * hd)) schedule(static)
  for (int64_t b = 0; b < s.B; ++b)
    for (int kvh = 0; kvh < s.kv_heads; ++kvh) {
      std::vector<float> dp(T);
      for (int64_t j = 0; j < T; ++j) {
        std::fill_n(dk + (b * T + j) * KVw + kvh * hd, hd, 0.0f);
        std::fill_n(dv + (b * T + j) * KVw + kvh * hd, hd, 0.0f);
      }
      for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        const float* P = probs + (b * s.heads + h) * T * T;
        for (int64_t i = 0; i < T; ++i) {
          const float* p = P + i * T;
          const float* doi = dout + (b * T + i) * Qw + h * hd;
          const float* qi = q + (b * T + i) * Qw + h * hd;
          float* dqi = dq + (b * T + i) * Qw + h * hd;
          // dp_j = dout_i · v_j; dv_j += p_j dout_i.
          float pdp = 0.0f;
          for (int64_t j = 0; j <= i; ++j) {
            const float* vj = v + (b * T + j) * KVw + kvh * hd;
            float* dvj = dv + (b * T + j) * KVw + kvh * hd;
            float d = 0.0f;
            for (int64_t e = 0; e < hd; ++e) {
              d += doi[e] * vj[e];
              dvj[e] += p[j] * doi[e];
            }
            if (dprobs) d += dprobs[(b * s.heads + h) * T * T + i * T + j];
            dp[j] = d;
            pdp += p[j] * d;
          }
          // Softmax backward: ds_j = p_j (dp_j - Σ p dp); scores were q·k · scale.
          std::fill(dqi, dqi + hd, 0.0f);
          for (int64_t j = 0; j <= i; ++j) {
            const float ds = p[j] * (dp[j] - pdp) * scale;
            const float* kj = k + (b * T + j) * KVw + kvh * hd;
            float* dkj = dk + (b * T + j) * KVw + kvh * hd;
            for (int64_t e = 0; e < hd; ++e) {
              dqi[e] += ds * kj[e];
              dkj[e] += ds * qi[e];
            }
          }
        }
      }
    }
}

void SwigluForward(const float* gate, const float* up, int64_t n, float* out, int threads) {
#pragma omp parallel for num_threads(Workers(threads, 8 * n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void SwigluBackward(const float* dout, const float* gate, const float* up, int64_t n, float* dgate, float* dup,
                    int threads) {
#pragma omp parallel for num_threads(Workers(threads, 8 * n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], sig = 1.0f / (1.0f + std::exp(-g));
    dup[i] = dout[i] * g * sig;
    // d silu/dg = σ(g) (1 + g (1 - σ(g)))
    dgate[i] = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
  }
}

namespace {

void CheckTargets(std::span<const int32_t> targets, int64_t V) {
  for (size_t r = 0; r < targets.size(); ++r)
    if (targets[r] != kIgnoreIndex && (targets[r] < 0 || targets[r] >= V))
      Fail("cross-entropy: target {} at row {} is outside the vocabulary of {}", targets[r], r, V);
}

// log Σ exp(z) of one row, and its maximum.
double LogSumExp(const float* z, int64_t V, float& mx) {
  mx = *std::max_element(z, z + V);
  double sum = 0.0;
  for (int64_t c = 0; c < V; ++c) sum += std::exp((double)(z[c] - mx));
  return std::log(sum);
}

}  // namespace

double CrossEntropyForwardBackward(float* logits, std::span<const int32_t> targets, int64_t V, float scale,
                                   int threads) {
  CheckTargets(targets, V);
  const int64_t N = (int64_t)targets.size();
  std::vector<double> row_loss(N, 0.0);
#pragma omp parallel for num_threads(Workers(threads, 4 * N * V)) schedule(static)
  for (int64_t r = 0; r < N; ++r) {
    float* z = logits + r * V;
    if (targets[r] == kIgnoreIndex) {
      std::fill(z, z + V, 0.0f);
      continue;
    }
    float mx;
    const double lse = LogSumExp(z, V, mx);
    row_loss[r] = lse - (double)(z[targets[r]] - mx);
    for (int64_t c = 0; c < V; ++c) z[c] = (float)std::exp((double)(z[c] - mx) - lse) * scale;
    z[targets[r]] -= scale;
  }
  double loss = 0.0;
  for (double l : row_loss) loss += l;
  return loss;
}

double CrossEntropyLoss(const float* logits, std::span<const int32_t> targets, int64_t V, int threads) {
  CheckTargets(targets, V);
  const int64_t N = (int64_t)targets.size();
  std::vector<double> row_loss(N, 0.0);
#pragma omp parallel for num_threads(Workers(threads, 2 * N * V)) schedule(static)
  for (int64_t r = 0; r < N; ++r) {
    if (targets[r] == kIgnoreIndex) continue;
    float mx;
    const double lse = LogSumExp(logits + r * V, V, mx);
    row_loss[r] = lse - (double)(logits[r * V + targets[r]] - mx);
  }
  double loss = 0.0;
  for (double l : row_loss) loss += l;
  return loss;
}

}  // namespace smelt::train
