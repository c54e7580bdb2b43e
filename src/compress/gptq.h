#pragma once
// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers") for the block formats of formats/codes.h: weights are quantized
// one input column at a time, and each column's rounding error is pushed onto the columns not
// yet quantized through the inverse Hessian of the layer's squared output error, so that later
// columns compensate for it. Details follow the reference implementation (fasterquant):
// dampening damp * mean(diag(H)) on the diagonal, dead inputs (H_ii == 0: H_ii = 1 and the
// column zeroed), the upper Cholesky factor of H^-1, lazy batch updates, act-order (columns by
// descending diag(H)).
//
// The grid of a GGUF format is set per block by its scales, which the format's own encoder
// (Traits(type).from_float) chooses:
// - without act-order, when GPTQ reaches the first column of a block it encodes the block's
//   current, already error-updated weights with from_float to fix the block's scales, then
//   picks each column's codes on that grid as it goes;
// - with act-order the columns are visited out of block order, so all grids are fixed up front
//   from the original weights ("static groups", as AutoGPTQ and llm-compressor do with
//   act-order and groups).
// Only the codes change after the scales are fixed; the output is the encoded tensor.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace smelt {

struct GptqOptions {
  float damp = 0.01f;    // added to H's diagonal, as a fraction of mean(diag(H))
  bool act_order = false;
  int lazy_block = 128;  // columns per lazy batch (rounded up to whole format blocks, see .cc)
  int threads = 1;       // for the row loops and OpenBLAS
};

struct GptqResult {
  std::vector<uint8_t> data;  // RowBytes(type, C) * OC bytes: the encoded (OC, C) tensor
  // Σ over elements of (w - q)^2 / [H_F^-1]_qq, w the error-updated weight when its column was
  // quantized (the paper's Losses, which the reference code halves). In exact arithmetic this
  // is Σ_rows (W - Ŵ)_r (H + λI) (W - Ŵ)_rᵀ, the dampened proxy of the layer's output error.
  double proxy_loss = 0;
  double damp = 0;  // the dampening used: opts.damp, or larger if H needed more (see .cc)
};

// W: (OC, C) row-major f32, one output row per GGUF row. H: (C, C) row-major, 2/N Σ x xᵀ over
// N calibration inputs x (C); only its upper triangle (j >= i) is read. type: a format with
// HasCodeAccess. Throws Error for a bad shape or option, a format without code access,
// non-finite inputs, or an H that stays indefinite after raising the dampening.
GptqResult GptqQuantize(const float* W, int64_t OC, int64_t C, const double* H, DType type,
                        const GptqOptions& opts);

// The reference twin of GptqQuantize: column by column over the whole row (no lazy batches),
// one thread, H^-1 and its Cholesky factor by plain triple loops in double (no LAPACK). Same
// arguments, same result up to floating-point summation order; for tests.
GptqResult GptqQuantizeNaive(const float* W, int64_t OC, int64_t C, const double* H, DType type,
                             const GptqOptions& opts);

}  // namespace smelt
