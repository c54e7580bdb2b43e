#pragma once
// Blocked prompt kernels (kernels/prompt_gemm.h) for the k-quants on Q8_K activations: the AMX-INT8
// twins of the Q4_K, Q5_K and Q6_K row dots (kernels/kquant_amx.cc), the same bits as
// ReferenceQDot(type).
#include "kernels/prompt_gemm.h"

namespace smelt {

// Empty for other types or where CpuHasAmxInt8() is false.
PromptGemm AmxKQuantGemm(DType type);

}  // namespace smelt
