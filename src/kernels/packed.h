#pragma once
// Weights repacked at load into a layout that serves eight output rows per SIMD step.
//
// A Q4_0 matrix becomes panels of 8 rows (the last one padded with zero rows); a panel is its
// blocks in column order, each a BlockQ4_0x8: the 8 rows' fp16 scales side by side, then 4 chunks
// of 32 bytes where chunk c holds bytes qs[4c .. 4c+4) of row 0, then of row 1, ..., row 7. Since
// a Q4_0 byte qs[j] holds weight j (low nibble) and weight j + 16 (high nibble), the low nibbles of
// chunk c are weights 4c .. 4c+3 of each row and the high nibbles weights 16+4c .. 16+4c+3: with
// one broadcast of 4 activation bytes, _mm256_maddubs_epi16 multiplies all 8 rows at once and
// the 8 row sums land in the 8 lanes of one register, so no horizontal sums and one scale
// multiply per 8 rows.
//
// Per row and block the integer sum is ggml's exactly, Σ (q_w − 8)·q_a, computed as Σ q_w·q_a −
// 8·Σ q_a. The f32 result of a row accumulates the blocks in column order:
//   acc = fma(d_w·d_a, (float) sum, acc)
// which the scalar reference (PackedGemmReference) does with std::fma, so the AVX2 kernel and
// the reference agree bit for bit, and a token's outputs never depend on the other tokens of a
// batch. Against the unpacked kernels (kernels/qdot.h) only the order of the f32 sums differs.
#include <cstdint>
#include <vector>

#include "core/half.h"
#include "core/tensor.h"

namespace smelt {

inline constexpr int kPackRows = 8;

struct BlockQ4_0x8 {
  fp16_t d[kPackRows];             // scale of each row's block
  uint8_t qs[4][kPackRows * 4];    // chunk c: qs[4c .. 4c+4) of rows 0..7
};
static_assert(sizeof(BlockQ4_0x8) == 2 * kPackRows + 16 * kPackRows, "a packed Q4_0 block of 8 rows is 144 bytes");

// A repacked weight matrix: (rows, cols) as in the source tensor (ne = {cols, rows}).
struct PackedMatrix {
  DType type = DType::kQ4_0;  // the source type (the only one packed today)
  int64_t rows = 0, cols = 0;
  std::vector<BlockQ4_0x8> blocks;  // [panel][block]: (rows + 7) / 8 panels of cols / 32 blocks

  int64_t panels() const { return (rows + kPackRows - 1) / kPackRows; }
  int64_t blocks_per_row() const { return cols / 32; }
  const BlockQ4_0x8* panel(int64_t p) const { return blocks.data() + p * blocks_per_row(); }
};

// Whether `w` can be packed (a 2-D Q4_0 tensor with data).
bool CanPack(const Tensor& w);
// The packed copy of `w` (CanPack(w) must hold).
PackedMatrix PackWeights(const Tensor& w);
// Row `row` of `p` decoded back to Q4_0 blocks (the inverse of packing, for tests).
void UnpackRow(const PackedMatrix& p, int64_t row, void* q4_0_row);

// y[t * y_stride + r] for r < 8, t < T: the 8 rows of one panel (nb blocks) times T activation
// rows encoded as Q8_0 (row t at a + t * a_stride bytes), the sums of whose blocks' codes are
// given in a_sums[t * nb + b].
using PackedGemmFn = void (*)(const BlockQ4_0x8* panel, int64_t nb, const uint8_t* a, size_t a_stride,
                              const int32_t* a_sums, int64_t T, float* y, int64_t y_stride);
void PackedGemmReference(const BlockQ4_0x8* panel, int64_t nb, const uint8_t* a, size_t a_stride,
                         const int32_t* a_sums, int64_t T, float* y, int64_t y_stride);
// The AVX2 twin (only valid where CpuHasAvx2FmaF16c()); nullptr where it is not built.
PackedGemmFn Avx2PackedGemm();
// What this CPU runs: the AVX2 twin, else nullptr (packing pays only with the SIMD kernel).
PackedGemmFn FastPackedGemm();

// y: (T, rows) = x: (T, cols) · pᵀ, each input row rounded to Q8_0 first as llama.cpp rounds a
// Q4_0 product's input; OpenMP over panels. Needs FastPackedGemm().
void MatMulPacked(const PackedMatrix& p, const float* x, int64_t T, float* y, int threads);

}  // namespace smelt
