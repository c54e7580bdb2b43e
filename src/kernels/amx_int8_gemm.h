#pragma once
// AMX-INT8 blocked prompt kernels (kernels/prompt_gemm.h), each with the row dot's bits
// (ReferenceQDot(type)): the k-quants Q2_K … Q6_K on Q8_K activations
// (kernels/kquant_amx.cc), and w8a8, its bitmask rows (sp50_w8a8, sp70_w8a8 and the int4
// sp70_w4a8, where the CPU also has AVX-512 VBMI2) and the 2:4 int4 rows (s24_w4a8, with AVX-512
// VBMI and GFNI) on per-token int8 activations (kernels/w8a8_amx.cc).
#include "kernels/prompt_gemm.h"

namespace smelt {

// Empty for other types or where CpuHasAmxInt8() is false.
PromptGemm AmxKQuantGemm(DType type);
PromptGemm AmxW8A8Gemm(DType type);

}  // namespace smelt
