#include "kernels/prompt_gemm.h"

#include "core/error.h"
#include "kernels/half_gemm.h"
#include "kernels/amx_int8_gemm.h"

namespace smelt {

size_t PromptTokensBytes(int64_t T, int64_t C) {
  return (size_t)PromptPaddedTokens(T) * (size_t)PromptPaddedColumns(C) * 4;
}

int64_t PromptGemmScratchFloats(int64_t C) { return kPromptGemmRows * PromptPaddedColumns(C); }

PromptGemm FastPromptGemm(DType type) {
  if (PromptGemm amx = AmxHalfGemm(type)) return amx;
  if (PromptGemm amx = AmxKQuantGemm(type)) return amx;
  if (PromptGemm amx = AmxW8A8Gemm(type)) return amx;
  if (PromptGemm wide = Avx512HalfGemm(type)) return wide;
  return Avx2HalfGemm(type);
}

PromptTokens PreparePromptTokens(const PromptGemm& k, const uint8_t* a, size_t a_stride, int64_t T, int64_t C,
                                 uint8_t* buffer) {
  if (!k.tokens) return {a, a_stride};
  SMELT_ASSERT(buffer != nullptr);
  return {buffer, k.tokens(a, a_stride, T, C, buffer)};
}

}  // namespace smelt
