#pragma once
// Prompt products of half-precision weights (F16, BF16) with activations rounded to the same type,
// as llama.cpp computes them (ggml's vec_dot_f16: every product of two halves is exact in f32),
// for batches long enough that a block of weight rows is worth widening once:
//   out[t · ld + r] = Σ_c w_r[c] · a_t[c],   r < n (the rows already widened to f32), t < T
// Each output is one 16-lane fused multiply-add chain over the columns (a masked register for
// the tail) reduced across its lanes, so a token's outputs depend only on its own row, never on the
// other tokens of the batch. Against the row dot (kernels/qdot.h DotHalves) only the order of the
// f32 sums differs: the callers use it from kMinBlockedBatch tokens on (kernels/matmul.h), so
// batches up to 16 tokens give exactly the logits of one-token steps.
#include <cstddef>
#include <cstdint>

#include "core/tensor.h"

namespace smelt {

// w: n rows of C floats (the weight rows widened); a: T rows of C halves of the weight's type,
// row t at a + t · a_stride bytes.
using HalfGemmFn = void (*)(const float* w, int64_t n, const uint8_t* a, size_t a_stride, int64_t T, int64_t C,
                            float* out, int64_t ld);

// The AVX-512 kernel for F16 or BF16 weights where this CPU has AVX-512 (CpuHasAvx512F()); nullptr
// for any other type or CPU. Its reference twin is the scalar row dot, ReferenceQDot(type).
HalfGemmFn FastHalfGemm(DType type);

}  // namespace smelt
