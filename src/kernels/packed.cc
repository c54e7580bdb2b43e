#include "kernels/packed.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu.h"
#include "core/error.h"
#include "formats/activation.h"
#include "formats/q4_0.h"
#include "formats/q8_0.h"
#include "formats/types.h"

namespace smelt {
namespace {

// Below this many multiply-adds a product runs on one thread: waking a team costs more.
constexpr int64_t kMinParallelWork = 1 << 16;

}  // namespace

bool CanPack(const Tensor& w) {
  return w.type == DType::kQ4_0 && w.n_dims == 2 && w.ne[0] % 32 == 0 && w.data && w.nrows() > 0;
}

PackedMatrix PackWeights(const Tensor& w) {
  SMELT_ASSERT(CanPack(w));
  PackedMatrix p;
  p.rows = w.nrows();
  p.cols = w.ne[0];
  const int64_t nb = p.blocks_per_row();
  p.blocks.assign(p.panels() * nb, BlockQ4_0x8{});  // padding rows: scale 0, codes 0
  const auto* src = static_cast<const BlockQ4_0*>(w.data);
  for (int64_t r = 0; r < p.rows; ++r) {
    const int64_t panel = r / kPackRows, lane = r % kPackRows;
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ4_0& in = src[r * nb + b];
      BlockQ4_0x8& out = p.blocks[panel * nb + b];
      out.d[lane] = in.d;
      for (int c = 0; c < 4; ++c) std::memcpy(&out.qs[c][lane * 4], &in.qs[4 * c], 4);
    }
  }
  return p;
}

void UnpackRow(const PackedMatrix& p, int64_t row, void* q4_0_row) {
  SMELT_ASSERT(row >= 0 && row < p.rows);
  auto* dst = static_cast<BlockQ4_0*>(q4_0_row);
  const int64_t nb = p.blocks_per_row(), lane = row % kPackRows;
  const BlockQ4_0x8* panel = p.panel(row / kPackRows);
  for (int64_t b = 0; b < nb; ++b) {
    dst[b].d = panel[b].d[lane];
    for (int c = 0; c < 4; ++c) std::memcpy(&dst[b].qs[4 * c], &panel[b].qs[c][lane * 4], 4);
  }
}

void PackedGemmReference(const BlockQ4_0x8* panel, int64_t nb, const uint8_t* a, size_t a_stride,
                         const int32_t* a_sums, int64_t T, float* y, int64_t y_stride) {
  for (int64_t t = 0; t < T; ++t) {
    const auto* act = reinterpret_cast<const BlockQ8_0*>(a + t * a_stride);
    for (int r = 0; r < kPackRows; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ4_0x8& w = panel[b];
        int32_t sum = 0;  // Σ q_w·q_a over the block, q_w the unsigned code
        for (int c = 0; c < 4; ++c)
          for (int i = 0; i < 4; ++i) {
            const uint8_t byte = w.qs[c][r * 4 + i];
            sum += (byte & 0x0F) * act[b].qs[4 * c + i] + (byte >> 4) * act[b].qs[16 + 4 * c + i];
          }
        sum -= 8 * a_sums[t * nb + b];
        const float d = Fp16ToFloat(w.d[r]) * Fp16ToFloat(act[b].d);
        acc = std::fma(d, (float)sum, acc);
      }
      y[t * y_stride + r] = acc;
    }
  }
}

PackedGemmFn FastPackedGemm() { return CpuHasAvx2FmaF16c() ? Avx2PackedGemm() : nullptr; }

void MatMulPacked(const PackedMatrix& p, const float* x, int64_t T, float* y, int threads) {
  const PackedGemmFn gemm = FastPackedGemm();
  SMELT_ASSERT(gemm);
  const int64_t C = p.cols, OC = p.rows, nb = p.blocks_per_row();
  const size_t a_bytes = RowBytes(DType::kQ8_0, C);
  std::vector<uint8_t> encoded(a_bytes * (size_t)T);
  std::vector<int32_t> sums(T * nb);
  for (int64_t t = 0; t < T; ++t) {
    QuantizeActivationRow(DType::kQ8_0, x + t * C, encoded.data() + t * a_bytes, C);
    const auto* blocks = reinterpret_cast<const BlockQ8_0*>(encoded.data() + t * a_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      int32_t s = 0;
      for (int8_t q : blocks[b].qs) s += q;
      sums[t * nb + b] = s;
    }
  }
  const int64_t panels = p.panels();
  threads = (int)std::max<int64_t>(1, std::min<int64_t>(threads, panels));
  if (C * OC * T < kMinParallelWork) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t q = 0; q < panels; ++q) {
    const int64_t r0 = q * kPackRows;
    if (r0 + kPackRows <= OC) {
      gemm(p.panel(q), nb, encoded.data(), a_bytes, sums.data(), T, y + r0, OC);
      continue;
    }
    std::vector<float> tail(T * kPackRows);  // the padded panel: only its real rows are written
    gemm(p.panel(q), nb, encoded.data(), a_bytes, sums.data(), T, tail.data(), kPackRows);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = r0; r < OC; ++r) y[t * OC + r] = tail[t * kPackRows + (r - r0)];
  }
}

}  // namespace smelt
