#pragma once
// Blocked prompt kernels (kernels/prompt_gemm.h) of half-precision weights (F16, BF16) with
// activations rounded to the same type, as llama.cpp computes them (ggml's vec_dot_f16: every
// product of two halves is exact in f32). Two twins of the scalar row dot (ReferenceQDot(type)),
// each keeping every product exact so that only the order of the f32 sums differs from it:
//   - AVX2 (half_gemm_avx2.cc) and AVX-512: the rows widened to f32 once, then 16-lane fused multiply-add chains over the
//     columns, reduced across the lanes (it reads the encoded rows as they are);
//   - AMX-BF16: each half split exactly into two bf16 (hi + lo; a bf16 is exact as hi alone), the
//     four partial products summed in f32 by the tile unit. It reads the tokens in its own tile
//     layout, which PromptGemm::tokens writes once per product.
#include "kernels/prompt_gemm.h"

namespace smelt {

// Each twin by name (empty where this CPU lacks it); FastPromptGemm picks AMX-BF16 where
// CpuHasAmxBf16(), else AVX-512 where CpuHasAvx512F(), else AVX2 where CpuHasAvx2FmaF16c().
PromptGemm Avx2HalfGemm(DType type);
PromptGemm Avx512HalfGemm(DType type);
PromptGemm AmxHalfGemm(DType type);

}  // namespace smelt
