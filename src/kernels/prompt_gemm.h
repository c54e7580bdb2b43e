#pragma once
// Blocked prompt kernels: a block of up to kPromptGemmRows weight rows against every token of a
// prompt-sized batch, the rows prepared once per block and reused across the tokens:
//   out[t · ld + r] = row r of the weights · token t,   r < n ≤ kPromptGemmRows, t < T
// Each is a twin of the weight type's row dot (ReferenceQDot(type), on the same encoded
// activations) and keeps every token's outputs independent of the other tokens of the batch. The
// callers (MatMul, the fused products) use them from kMinBlockedBatch tokens on
// (kernels/matmul.h), so batches up to 16 tokens give exactly the logits of one-token steps; those
// with the one-token product's bits from fewer tokens (from_tokens, RunsBlocked).
//   - F16/BF16: kernels/half_gemm.h (AVX-512, AMX-BF16);
//   - Q2_K … Q6_K, w8a8, its bitmask rows sp50_w8a8/sp70_w8a8/sp70_w4a8 and s24_w4a8:
//     kernels/amx_int8_gemm.h
//     (AMX-INT8, the row dots' bits).
#include <cstddef>
#include <cstdint>
#include <functional>

#include "core/tensor.h"

namespace smelt {

inline constexpr int64_t kPromptGemmRows = 16;  // the most weight rows of one call
// Tile sizes the AMX twins pad to: 16 tokens, 32 columns.
inline constexpr int64_t PromptPaddedTokens(int64_t T) { return (T + 15) / 16 * 16; }
inline constexpr int64_t PromptPaddedColumns(int64_t C) { return (C + 31) / 32 * 32; }

// w: n ≤ kPromptGemmRows rows of C values of the kernel's type, row r at w + r · w_stride bytes;
// a, a_stride: the T tokens as the kernel reads them (PromptTokens); scratch: PromptGemmScratchFloats(C).
using PromptGemmFn = void (*)(const uint8_t* w, size_t w_stride, int64_t n, const uint8_t* a, size_t a_stride,
                              int64_t T, int64_t C, float* out, int64_t ld, float* scratch);
// Writes T encoded rows of C values (a_stride bytes apart) in a kernel's own layout at dst
// (PromptTokensBytes(T, C) bytes at most) and returns the a_stride its gemm takes with it.
using PromptTokensFn = size_t (*)(const uint8_t* a, size_t a_stride, int64_t T, int64_t C, uint8_t* dst);

struct PromptGemm {
  PromptGemmFn gemm = nullptr;      // nullptr: no kernel for this type on this CPU
  PromptTokensFn tokens = nullptr;  // nullptr: gemm reads the encoded rows as they are
  // 0, or (2 .. kMinBlockedBatch − 1) the kernel gives every output the bits of the type's
  // one-token product (its fast row dot, FastQDot: w8a8 and its sparse rows, whose row dots are one
  // exact integer sum and one scale step), so it runs from this many tokens on, where it overtakes
  // the row kernels. The k-quants' AMX kernels have ReferenceQDot's bits, which their fast row
  // dots and packed kernels do not: 0.
  int64_t from_tokens = 0;
  explicit operator bool() const { return gemm != nullptr; }
};

// The fastest blocked prompt kernel for `type` on this CPU, or empty.
PromptGemm FastPromptGemm(DType type);

// Bytes any kernel's token layout needs for T rows of C, and floats of scratch per call.
size_t PromptTokensBytes(int64_t T, int64_t C);
int64_t PromptGemmScratchFloats(int64_t C);

// The tokens as `k` reads them: the encoded rows themselves, or its layout written into `buffer`
// (PromptTokensBytes(T, C) bytes).
struct PromptTokens {
  const uint8_t* data = nullptr;
  size_t stride = 0;
};
PromptTokens PreparePromptTokens(const PromptGemm& k, const uint8_t* a, size_t a_stride, int64_t T, int64_t C,
                                 uint8_t* buffer);

// The weight rows o0 .. o0 + n − 1 (n ≤ kPromptGemmRows) of a blocked product, `w_stride` bytes
// apart: where they lie in memory, or made in `buffer` (the caller's row_buffer bytes per thread).
using PromptRowsFn = std::function<const uint8_t*(int64_t o0, int64_t n, uint8_t* buffer)>;
// y (T, OC) = x (T, C) times OC weight rows on `k`: the rows of x encoded in `act` and put in the
// kernel's token layout once, then the weight rows in blocks of kPromptGemmRows over up to
// `threads` threads (one where the work is too small to share). MatMul's path for prompt-sized
// batches, and packed weights' (their rows restored block by block).
void PromptProduct(const PromptGemm& k, DType act, const float* x, int64_t T, int64_t C, int64_t OC, size_t w_stride,
                   size_t row_buffer, const PromptRowsFn& rows, float* y, int threads);

}  // namespace smelt
