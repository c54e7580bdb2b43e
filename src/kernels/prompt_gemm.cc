#include "kernels/prompt_gemm.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "formats/activation.h"
#include "formats/types.h"
#include "kernels/parallel.h"
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

void PromptProduct(const PromptGemm& k, DType act, const float* x, int64_t T, int64_t C, int64_t OC, size_t w_stride,
                   size_t row_buffer, const PromptRowsFn& rows, float* y, int threads) {
  SMELT_ASSERT(k);
  const size_t a_bytes = RowBytes(act, C);
  std::vector<uint8_t> encoded(a_bytes * (size_t)T);
  for (int64_t t = 0; t < T; ++t) QuantizeActivationRow(act, x + t * C, encoded.data() + t * a_bytes, C);
  std::vector<uint8_t> tile_tokens(k.tokens ? PromptTokensBytes(T, C) : 0);
  const PromptTokens tokens = PreparePromptTokens(k, encoded.data(), a_bytes, T, C, tile_tokens.data());
  const int64_t n_blocks = (OC + kPromptGemmRows - 1) / kPromptGemmRows;
  threads = (int)std::max<int64_t>(1, std::min<int64_t>(threads, n_blocks));
  if (C * OC * T < kMinParallelWork) threads = 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> scratch(PromptGemmScratchFloats(C));
    std::vector<uint8_t> buffer(row_buffer);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t o0 = b * kPromptGemmRows, n = std::min(OC - o0, kPromptGemmRows);
      k.gemm(rows(o0, n, buffer.data()), w_stride, n, tokens.data, tokens.stride, T, C, y + o0, OC, scratch.data());
    }
  }
}

}  // namespace smelt
