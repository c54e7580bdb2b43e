#pragma once
// Prompt products of half-precision weights (F16, BF16) with activations rounded to the same type,
// as llama.cpp computes them (ggml's vec_dot_f16: every product of two halves is exact in f32),
// for batches long enough that a block of weight rows is worth preparing once:
//   out[t · ld + r] = Σ_c w_r[c] · a_t[c],   r < n ≤ kHalfGemmRows, t < T
// Two twins of the scalar row dot (ReferenceQDot(type)), each keeping every product exact so that
// only the order of the f32 sums differs from it:
//   - AVX-512: the rows widened to f32 once, then 16-lane fused multiply-add chains over the
//     columns, reduced across the lanes (it reads the encoded rows as they are);
//   - AMX-BF16: each half split exactly into two bf16 (hi + lo; a bf16 is exact as hi alone), the
//     four partial products summed in f32 by the tile unit. It reads the tokens in its own tile
//     layout, which HalfGemm::tokens writes once per product.
// A token's outputs depend only on its own row, never on the other tokens of the batch. The callers
// use these from kMinBlockedBatch tokens on (kernels/matmul.h), so batches up to 16 tokens give
// exactly the logits of one-token steps.
#include <cstddef>
#include <cstdint>

#include "core/tensor.h"

namespace smelt {

inline constexpr int64_t kHalfGemmRows = 16;  // the most weight rows of one call
// Tile sizes the AMX twin pads to: 16 tokens, 32 columns (one 64-byte tile row of bf16).
inline constexpr int64_t HalfPaddedTokens(int64_t T) { return (T + 15) / 16 * 16; }
inline constexpr int64_t HalfPaddedColumns(int64_t C) { return (C + 31) / 32 * 32; }

// w: n ≤ kHalfGemmRows rows of C halves of the kernel's type, row r at w + r · w_stride bytes;
// a, a_stride: the T tokens as the kernel reads them (HalfTokens); scratch: HalfGemmScratchFloats(C).
using HalfGemmFn = void (*)(const uint8_t* w, size_t w_stride, int64_t n, const uint8_t* a, size_t a_stride,
                            int64_t T, int64_t C, float* out, int64_t ld, float* scratch);
// Writes T encoded rows of C halves (a_stride bytes apart) in a kernel's own layout at dst
// (HalfTokensBytes(T, C) bytes at most) and returns the a_stride its gemm takes with it.
using HalfTokensFn = size_t (*)(const uint8_t* a, size_t a_stride, int64_t T, int64_t C, uint8_t* dst);

struct HalfGemm {
  HalfGemmFn gemm = nullptr;      // nullptr: no kernel for this type on this CPU
  HalfTokensFn tokens = nullptr;  // nullptr: gemm reads the encoded rows as they are
  explicit operator bool() const { return gemm != nullptr; }
};

// The fastest kernel for F16 or BF16 weights on this CPU: AMX-BF16 (CpuHasAmxBf16()), else AVX-512
// (CpuHasAvx512F()); empty for any other type or CPU.
HalfGemm FastHalfGemm(DType type);
// Each twin by name (empty where this CPU lacks it), for tests and benchmarks.
HalfGemm Avx512HalfGemm(DType type);
HalfGemm AmxHalfGemm(DType type);

// Bytes any kernel's token layout needs for T rows of C, and floats of scratch per call.
size_t HalfTokensBytes(int64_t T, int64_t C);
int64_t HalfGemmScratchFloats(int64_t C);

// The tokens as `k` reads them: the encoded rows themselves, or its layout written into `buffer`
// (HalfTokensBytes(T, C) bytes).
struct HalfTokens {
  const uint8_t* data = nullptr;
  size_t stride = 0;
};
HalfTokens PrepareHalfTokens(const HalfGemm& k, const uint8_t* a, size_t a_stride, int64_t T, int64_t C,
                             uint8_t* buffer);

}  // namespace smelt
