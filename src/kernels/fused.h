#pragma once
// Fused steps of the forward pass on activations encoded once (kernels/qdot.h, kernels/packed.h):
//   - RmsNormEncode: rmsnorm(x) · w and its encoding in the weights' activation type in one pass
//     over each row (no f32 normalized copy);
//   - ProjectGroup: several weights reading the same encoded input (q, k, v) in one parallel region,
//     each output written (=) or added (+=, the residual stream) as its rows are finished;
//   - ProjectSwiGlu: the gate and up rows of a block computed together and written as
//     silu(gate) · up, so neither product is stored.
// Each one computes what the plain steps compute with the same operations in the same order
// (RmsNorm then QuantizeActivationRow; MatMul or MatMulPacked; AddInPlace; SwiGlu), so the
// results are the same bits, and a token's results never depend on the other tokens of a batch.
// Nothing here allocates: the caller hands in every buffer (ProjectScratchFloats).
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "kernels/prompt_gemm.h"
#include "kernels/matmul.h"
#include "kernels/packed.h"
#include "kernels/qdot.h"

namespace smelt {

// A weight as the fused products read it: its packed copy, or its rows with the dot kernels
// MatMul would run.
struct EncodedWeight {
  const Tensor* w = nullptr;
  const PackedMatrix* packed = nullptr;  // the packed kernel when set: packed_gemm (and packed_gemm2
  PackedGemmFn packed_gemm = nullptr;    // where the CPU has a two-panel form), chosen once here
  PackedGemm2Fn packed_gemm2 = nullptr;  // rather than per product
  QDotRowKernels kernels;                // otherwise FastQDotRowKernels(w->type), run by QDotRows
  PromptGemm prompt;                     // prompts: FastPromptGemm(w->type), as MatMul
  DType act = DType::kF32;  // the activation type its input is encoded in
  int64_t rows = 0, cols = 0;
};

// Whether `w` (with its packed copy, or nullptr) runs on encoded activations under `act`: a
// packed copy, or a FastQDot kernel with Activations::kGgml. Fills `out` when it does.
bool FindEncodedWeight(const Tensor& w, const PackedMatrix* packed, Activations act, EncodedWeight& out);

// T activation rows of C values encoded in `type`, and for Q8_0 the sum of each block's codes
// (what the packed Q4_0 kernel needs), as (T, C / 32) int32.
struct EncodedRows {
  DType type = DType::kF32;
  int64_t T = 0, C = 0;
  size_t row_bytes = 0;
  uint8_t* data = nullptr;  // T * row_bytes
  int32_t* sums = nullptr;  // Q8_0 only: T * C / 32
  // Q8_0 and Q8_1 only, where given: ActivationBlockScales (kernels/packed.h), TileScaleFloats · T;
  // and where kMinPairTokens ≤ T ≤ kPairTokens ActivationBlockPairs.
  float* scales = nullptr;
  int8_t* pairs = nullptr;
  // PromptTokensBytes(T, C) bytes where the products write the tokens once in a blocked prompt
  // kernel's own layout (kernels/prompt_gemm.h): needed where a weight's `prompt` has `tokens`.
  uint8_t* prompt_tokens = nullptr;
};

// Bytes of one encoded row, and int32 block sums per row (0 unless Q8_0).
size_t EncodedRowBytes(DType type, int64_t C);
int64_t EncodedRowSums(DType type, int64_t C);

// out.data/sums (sized for T rows) := x (T, C) encoded in out.type: QuantizeActivationRow per row,
// the rows split across up to `threads` threads; and out.scales where given.
void EncodeRows(const float* x, int64_t T, int64_t C, EncodedRows& out, int threads = 1);

// rows.scales and rows.pairs where given, from rows.T encoded rows of rows.C values: EncodeRows and
// RmsNormEncode call it; rows encoded one by one call it once after.
void FinishTileActivations(EncodedRows& rows);

// The same for rmsnorm(x_t) · w (kernels/ops.h RmsNorm, bit for bit), normalized a block at a
// time into registers-sized pieces and encoded at once. Encodings with a whole-row scale (i8_pc)
// normalize the row into `row_scratch` first (C floats per thread). The rows are split across up to
// `threads` threads, at most one per row.
void RmsNormEncode(const float* x, const float* w, float eps, int64_t T, int64_t C, EncodedRows& out,
                   float* row_scratch, int threads = 1);

enum class Write { kStore, kAdd };  // y = product, or y += product (a residual add)

// One product of a group: y (T, w.rows) written as `write` says.
struct Projection {
  const EncodedWeight* w;
  float* y;
  Write write = Write::kStore;
};

// Floats of scratch each thread needs for T tokens of C inputs (the longest input row of the
// products it serves); give ProjectGroup/ProjectSwiGlu threads × this.
int64_t ProjectScratchFloats(int64_t T, int64_t C);

// Every projection of `group` (all reading `a`, whose type each one's act must be) in one
// parallel region over all their row blocks.
void ProjectGroup(std::span<const Projection> group, const EncodedRows& a, int threads, float* scratch);

// y (T, F) = silu(a · gateᵀ) ⊙ (a · upᵀ): each block of rows of the two weights in turn, the
// product written at once (SwiGlu of the two MatMul outputs, bit for bit).
void ProjectSwiGlu(const EncodedWeight& gate, const EncodedWeight& up, const EncodedRows& a, float* y, int threads,
                   float* scratch);

}  // namespace smelt
