#pragma once
// Reference matrix products against a weight tensor of any readable type (formats/types.h):
//   y: (T, OC) = x: (T, C) · wᵀ,   w: (OC, C), i.e. ne = {C, OC}
// F32 weights are read in place. Weights with a fast quantized dot product (kernels/qdot.h,
// FastQDot: q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, the k-quants, f16/bf16, w8a8, i8_pc and the
// sparse s24_q8/s24_q4/s24_w4a8/sp50_q8/sp70_q8/sp50_w8a8/sp70_w8a8/sp50_f16/sp70_f16 where the CPU
// has AVX2) under
// Activations::kGgml are never decoded: each input row is encoded once in the activation type
// and every output is one dot product of the encoded bytes, as llama.cpp computes it. Every
// other case dequantizes one row at a time into a per-thread buffer (DequantizeRow). Rows are taken in blocks of 16 that are reused across all T
// inputs while they sit in cache. For a large batch (T >= 17) the block is transposed to (C, 16)
// so that its 16 outputs accumulate side by side in order of c (vectorizable without horizontal
// sums); for up to 16 inputs each output is a DotF32 of a row. The two orders of summation differ
// in the last bits only. So up to 16 inputs, and for the quantized dot products at any T, each
// input row's outputs are the same bits whatever else is in the batch.
// Activations: with Activations::kGgml (what the runtime uses) each input row is first rounded
// to the weight type's activation type (formats/activation.h: Q8_0 for Q4_0, F16 for F16, ...),
// as llama.cpp's CPU backend does; kExact multiplies by the f32 inputs as given.
// Threading: OpenMP over blocks of output rows, `threads` threads; each output value is
// computed by exactly one thread with the same code, so results do not depend on `threads`.
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "kernels/prompt_gemm.h"

namespace smelt {

// From this many input rows on, MatMul (and the fused products, which match it) may reuse a block
// of weight rows across the inputs in a blocked kernel that sums in another order (a transposed
// f32 block; kernels/prompt_gemm.h). Below, rows are dotted directly (or a blocked kernel runs
// that has their bits: RunsBlocked), so every input row's outputs are the same bits whatever else
// is in the batch: a speculative verification or a batch of decoded sequences (up to 16 tokens)
// gives exactly the logits of one-token steps.
inline constexpr int64_t kMinBlockedBatch = 17;

// Whether the blocked kernel `k` (kernels/prompt_gemm.h) runs a product of T tokens: from
// kMinBlockedBatch tokens, or from k.from_tokens where it has the one-token product's bits.
inline bool RunsBlocked(const PromptGemm& k, int64_t T) {
  return k && T >= (k.from_tokens ? k.from_tokens : kMinBlockedBatch);
}

// Throws Error("CONTEXT: tensor NAME: ...") unless `t` has a type smelt can dequantize, a row
// length that is a multiple of its block size, and at least TensorBytes of data.
void CheckReadable(const Tensor& t, const std::string& context);

enum class Activations {
  kGgml,   // rounded to ActivationType(w.type) first
  kExact,  // used as given
};

// y[t * OC + o] = Σ_c w[o, c] · x̃[t * C + c] for t < T, o < OC, where x̃ is x rounded as `act`
// says.
void MatMul(const Tensor& w, const float* x, int64_t T, float* y, int threads, Activations act = Activations::kGgml);

// y[o] = Σ_c w[o, c] · x̃[c]: MatMul with T = 1.
inline void MatVec(const Tensor& w, const float* x, float* y, int threads, Activations act = Activations::kGgml) {
  MatMul(w, x, 1, y, threads, act);
}

// Copies row `row` of `t` (any readable type) to dst[ne[0]] as f32: an embedding lookup.
void ReadRowF32(const Tensor& t, int64_t row, float* dst);

}  // namespace smelt
