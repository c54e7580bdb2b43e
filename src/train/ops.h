#pragma once
// The operations of a Llama-family decoder with their backward passes, in fp32, for training.
// Plain loops except the large matrix products (OpenBLAS sgemm). Activations are row-major:
// N rows (tokens) of C values. A weight matrix W (OC, C) is row-major (GGUF's ne = {C, OC}).
//
// Conventions: a forward writes its outputs; a backward ADDS into parameter gradients (so
// micro-batches accumulate) and WRITES input gradients, unless a parameter says otherwise.
// Loops over rows run on `threads` OpenMP threads; each row's result does not depend on the
// thread count, and parameter gradients are summed in a fixed order, so results are
// reproducible bit for bit for a given thread count. The matrix products split their rows
// into one piece per thread, each a single-threaded sgemm: callers set OpenBLAS to one thread
// (kernels/blas.h: BlasThreads), so that two thread pools never compete for the cores.
#include <cstdint>
#include <span>
#include <vector>

namespace smelt::train {

// ---- embedding: out[i] = table[tokens[i]] ---------------------------------------------------
void EmbeddingForward(const float* table, std::span<const int32_t> tokens, int64_t C, float* out);
// dtable[tokens[i]] += dout[i], in token order.
void EmbeddingBackward(const float* dout, std::span<const int32_t> tokens, int64_t C, float* dtable);

// ---- RMSNorm: y = x / sqrt(mean(x²) + eps) * w ----------------------------------------------
// rstd (N) receives 1 / sqrt(mean(x²) + eps) for the backward pass.
void RmsNormForward(const float* x, const float* w, int64_t N, int64_t C, float eps, float* y, float* rstd,
                    int threads);
// dx = (dy·w - x̂ · mean(dy·w·x̂)) · rstd with x̂ = x·rstd; dw += Σ_rows dy·x̂.
void RmsNormBackward(const float* dy, const float* x, const float* w, const float* rstd, int64_t N, int64_t C,
                     float* dx, float* dw, int threads);

// ---- linear: y (N, OC) = x (N, C) · Wᵀ [+ b] ------------------------------------------------
void LinearForward(const float* x, const float* W, const float* b, int64_t N, int64_t C, int64_t OC, float* y,
                   int threads);
// dx (N, C) = dy · W (added to dx when accumulate_dx, else written; skipped when dx is null);
// dW += dyᵀ · x; db += Σ_rows dy (when db is not null).
void LinearBackward(const float* dy, const float* x, const float* W, int64_t N, int64_t C, int64_t OC, float* dx,
                    bool accumulate_dx, float* dW, float* db, int threads);

// ---- RoPE -----------------------------------------------------------------------------------
// Rotates, in place, `heads` heads of head_dim values in each of the N rows; row r sits at
// position positions[r]. inv_freq holds rope_dim / 2 frequencies (kernels/rope.h's pairing).
// The backward pass is the inverse rotation (the transpose of a rotation), also in place.
struct RopeShape {
  int heads = 0;
  int head_dim = 0;
  int rope_dim = 0;
  bool neox = false;
};
void RopeForward(float* x, std::span<const int32_t> positions, const RopeShape& s, const float* inv_freq,
                 int threads);
void RopeBackward(float* dx, std::span<const int32_t> positions, const RopeShape& s, const float* inv_freq,
                  int threads);

// ---- causal grouped-query attention ---------------------------------------------------------
// B sequences of T rows each. q: (B·T, H·hd), k and v: (B·T, KVH·hd); query head h reads kv
// head h / (H / KVH). out (B·T, H·hd) = softmax(q kᵀ / sqrt(hd), causal) v. probs (B, H, T, T)
// keeps the softmax (zeros above the diagonal) for the backward pass.
struct AttentionShape {
  int64_t B = 0, T = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
};
void AttentionForward(const float* q, const float* k, const float* v, const AttentionShape& s, float* out,
                      float* probs, int threads);
// Writes dq, dk, dv (kv heads gather the gradients of every query head of their group).
// dprobs, when not null, is an extra ∂loss/∂probs (B, H, T, T) from a loss on the attention
// distribution itself (distillation), added to the one from `out` before the softmax backward.
void AttentionBackward(const float* dout, const float* q, const float* k, const float* v, const float* probs,
                       const AttentionShape& s, float* dq, float* dk, float* dv, int threads,
                       const float* dprobs = nullptr);
// The plain twins: the same definitions as loops over every query, key and element (the fast
// pair above runs each (sequence, head) as sgemm products of whole (T, T) score matrices).
void AttentionForwardReference(const float* q, const float* k, const float* v, const AttentionShape& s, float* out,
                               float* probs, int threads);
void AttentionBackwardReference(const float* dout, const float* q, const float* k, const float* v,
                                const float* probs, const AttentionShape& s, float* dq, float* dk, float* dv,
                                int threads, const float* dprobs = nullptr);

// ---- SwiGLU: out = silu(gate) · up, silu(g) = g / (1 + e^-g) ---------------------------------
void SwigluForward(const float* gate, const float* up, int64_t n, float* out, int threads);
void SwigluBackward(const float* dout, const float* gate, const float* up, int64_t n, float* dgate, float* dup,
                    int threads);

// ---- cross-entropy --------------------------------------------------------------------------
inline constexpr int32_t kIgnoreIndex = -1;
// Sum over rows whose target is not kIgnoreIndex of -log softmax(logits[row])[target]; logits
// (N, V). Overwrites logits with the gradient of scale · (that sum): (softmax - onehot) · scale
// (zero rows for ignored targets). Pass scale = 1 / (number of counted targets) for the mean.
// Throws Error for a target outside [0, V).
double CrossEntropyForwardBackward(float* logits, std::span<const int32_t> targets, int64_t V, float scale,
                                   int threads);
// The loss alone (no gradient), same sum.
double CrossEntropyLoss(const float* logits, std::span<const int32_t> targets, int64_t V, int threads);

}  // namespace smelt::train
