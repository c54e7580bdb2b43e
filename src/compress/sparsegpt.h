#pragma once
// SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately
// Pruned in One-Shot"): a layer's weights are pruned one input column at a time, and each
// pruned weight's change is pushed onto the columns not yet visited through the upper Cholesky
// factor U of the dampened inverse Hessian (H^-1 = Uᵀ U, compress/hessian.h), the OBS update
// that GPTQ (compress/gptq.h) uses for rounding. Details follow the reference implementation:
//   - adaptive mask selection: at the start of each block of Bs columns (128) the mask of the
//     whole block (every row) is chosen from the current, already updated weights by the OBS
//     saliency w² / [U_jj]², the lowest first; this implementation prunes exactly
//     round(S · OC · i2) - round(S · OC · i1) weights in block [i1, i2), so the matrix holds
//     exactly round(S · OC · C);
//   - N:M: at every group start (column j with j % M == 0) each row prunes the M - N lowest
//     saliencies of the group's M columns;
//   - dead inputs (H_jj == 0) are zeroed, dampening damp · mean(diag(H)).
// A weight that is exactly zero on input (or in a dead column) is pruned first (its saliency
// counts as -inf) and stays zero even beyond a block's or group's count: the update never revives
// it, so a block holds more zeros than its count when more of its weights were zero already.
//
// Joint quantization (the paper's 50% + 4-bit): with `quantize` set to a type with code access
// (formats/codes.h), each kept weight is rounded to its block's grid in the same sweep and the
// rounding error fed on with the pruning error. A block's scales come from its current updated
// weights through the format's own encoder when the sweep reaches the block (as GPTQ without
// act-order). Pruned weights take the code of an exact zero; a grid without one (an
// asymmetric block) is an Error.
#include <cstdint>
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace smelt {

// At most n non-zeros in every group of m consecutive weights along a row; m == 0: none.
struct NmPattern {
  int n = 0, m = 0;
  bool structured() const { return m > 0; }
  double sparsity() const { return m > 0 ? 1.0 - (double)n / m : 0.0; }
};

struct SparseGptOptions {
  float damp = 0.01f;  // added to H's diagonal, as a fraction of mean(diag(H))
  int block = 128;     // Bs: columns per mask-selection block and lazy batch
  int threads = 1;
  std::optional<DType> quantize;  // joint quantization to this type (see above)
};

struct SparseGptResult {
  std::vector<float> w;       // (OC, C) the pruned (and, when joint, decoded quantized) weights
  std::vector<uint8_t> data;  // joint only: the encoded (OC, C) tensor, RowBytes(type, C) * OC
  int64_t pruned = 0;         // weights in the mask (exactly zero in w)
  // Σ over weights of (w - ŵ)² / [U_jj]², w the updated weight when its column was visited: in
  // exact arithmetic Σ_rows (W - Ŵ)_r (H + λI) (W - Ŵ)_rᵀ, the layer's dampened output error.
  double proxy_loss = 0;
  double damp = 0;  // the dampening used
};

// W: (OC, C) row-major f32. H: (C, C) row-major Σ x xᵀ over calibration inputs x (any positive
// scale; only the upper triangle is read). sparsity in [0, 1) for unstructured pruning;
// ignored with a pattern (whose m must divide C). Throws Error for a bad shape, option or
// pattern, non-finite inputs, an H that stays indefinite, or a joint type without code access
// or exact zero (or whose block does not divide C).
SparseGptResult SparseGptPrune(const float* W, int64_t OC, int64_t C, const double* H, double sparsity,
                               NmPattern pattern, const SparseGptOptions& opts);

// The reference twin: column by column over the whole row (no lazy batches), one thread, H^-1's
// factor by plain loops. Same arguments, same result up to floating-point summation order.
SparseGptResult SparseGptPruneNaive(const float* W, int64_t OC, int64_t C, const double* H, double sparsity,
                                    NmPattern pattern, const SparseGptOptions& opts);

}  // namespace smelt
