#include "kernels/packed.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/cpu.h"
#include "core/error.h"
#include "formats/activation.h"
#include "formats/iq4_nl.h"
#include "formats/q4_0.h"
#include "formats/q5_0.h"
#include "formats/q8_0.h"
#include "formats/types.h"
#include "kernels/fused.h"
#include "kernels/parallel.h"

namespace smelt {
namespace {

// Below this many multiply-adds a product runs on one thread: waking a team costs more.

}  // namespace

bool CanPack(const Tensor& w) {
  return (w.type == DType::kQ4_0 || w.type == DType::kIQ4_NL || w.type == DType::kQ5_0 || w.type == DType::kQ8_0) &&
         w.n_dims == 2 && w.ne[0] % 32 == 0 && w.data &&
         w.nrows() > 0;
}

namespace {

// Packs (or, with unpack, restores) row `row`'s blocks: the chunks of 4 bytes of each source
// block, `chunks` of them, go to chunk c of the packed block at offset lane·4.
template <class Src, class Packed, bool kUnpack>
void MoveRow(std::conditional_t<kUnpack, Src, const Src>* row_blocks,
             std::conditional_t<kUnpack, const Packed, Packed>* panel, int64_t nb, int64_t lane) {
  constexpr int chunks = sizeof(Src::qs) / 4;
  for (int64_t b = 0; b < nb; ++b) {
    if constexpr (kUnpack) {
      row_blocks[b].d = panel[b].d[lane];
      for (int c = 0; c < chunks; ++c) std::memcpy(&row_blocks[b].qs[4 * c], &panel[b].qs[c][lane * 4], 4);
    } else {
      panel[b].d[lane] = row_blocks[b].d;
      for (int c = 0; c < chunks; ++c) std::memcpy(&panel[b].qs[c][lane * 4], &row_blocks[b].qs[4 * c], 4);
    }
    if constexpr (std::is_same_v<std::remove_const_t<Src>, BlockQ5_0>) {  // the fifth bits (packed.h)
      auto* plane = panel[b].qh + lane * 4;
      if constexpr (kUnpack) {
        uint32_t qh = 0;
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 8; ++j) qh |= (uint32_t)((plane[i] >> j) & 1) << (4 * j + i);
        StoreQh(qh, row_blocks[b].qh);
      } else {
        const uint32_t qh = LoadQh(row_blocks[b].qh);
        for (int i = 0; i < 4; ++i) {
          uint8_t byte = 0;
          for (int j = 0; j < 8; ++j) byte |= (uint8_t)(((qh >> (4 * j + i)) & 1) << j);
          plane[i] = byte;
        }
      }
    }
  }
}

template <class Src, class Packed>
void PackAll(const Tensor& w, PackedMatrix& p) {
  p.block_bytes = sizeof(Packed);
  const int64_t nb = p.blocks_per_row();
  p.data.assign((size_t)(p.panels() * nb) * sizeof(Packed), 0);  // padding rows: scale 0, codes 0
  auto* packed = reinterpret_cast<Packed*>(p.data.data());
  // Source rows are read byte-wise (a tensor may sit at any offset of its file).
  std::vector<Src> row(nb);
  for (int64_t r = 0; r < p.rows; ++r) {
    std::memcpy(row.data(), static_cast<const uint8_t*>(w.data) + (size_t)r * nb * sizeof(Src), nb * sizeof(Src));
    MoveRow<Src, Packed, false>(row.data(), packed + (r / kPackRows) * nb, nb, r % kPackRows);
  }
}

}  // namespace

PackedMatrix PackWeights(const Tensor& w) {
  SMELT_ASSERT(CanPack(w));
  PackedMatrix p;
  p.type = w.type;
  p.rows = w.nrows();
  p.cols = w.ne[0];
  if (w.type == DType::kQ4_0) {
    PackAll<BlockQ4_0, BlockQ4_0x8>(w, p);
  } else if (w.type == DType::kIQ4_NL) {
    PackAll<BlockIQ4_NL, BlockQ4_0x8>(w, p);  // the same nibble layout, codebook indices
  } else if (w.type == DType::kQ5_0) {
    PackAll<BlockQ5_0, BlockQ5_0x8>(w, p);
  } else {
    PackAll<BlockQ8_0, BlockQ8_0x8>(w, p);
  }
  return p;
}

void UnpackRow(const PackedMatrix& p, int64_t row, void* blocks) {
  SMELT_ASSERT(row >= 0 && row < p.rows);
  const int64_t nb = p.blocks_per_row(), lane = row % kPackRows;
  const uint8_t* panel = p.panel(row / kPackRows);
  if (p.type == DType::kQ4_0) {
    MoveRow<BlockQ4_0, BlockQ4_0x8, true>(static_cast<BlockQ4_0*>(blocks),
                                         reinterpret_cast<const BlockQ4_0x8*>(panel), nb, lane);
  } else if (p.type == DType::kIQ4_NL) {
    MoveRow<BlockIQ4_NL, BlockQ4_0x8, true>(static_cast<BlockIQ4_NL*>(blocks),
                                           reinterpret_cast<const BlockQ4_0x8*>(panel), nb, lane);
  } else if (p.type == DType::kQ5_0) {
    MoveRow<BlockQ5_0, BlockQ5_0x8, true>(static_cast<BlockQ5_0*>(blocks),
                                         reinterpret_cast<const BlockQ5_0x8*>(panel), nb, lane);
  } else {
    MoveRow<BlockQ8_0, BlockQ8_0x8, true>(static_cast<BlockQ8_0*>(blocks),
                                         reinterpret_cast<const BlockQ8_0x8*>(panel), nb, lane);
  }
}

namespace {

// Σ v(q_w)·q_a of row r of a packed nibble block against an activation block, v the value of a
// code: the unsigned code for Q4_0 (its offset is taken off later), the codebook entry for IQ4_NL.
template <DType kType>
int32_t RowSum(const BlockQ4_0x8& w, const BlockQ8_0& a, int r) {
  auto v = [](int q) { return kType == DType::kIQ4_NL ? (int)kIQ4NLValues[q] : q; };
  int32_t sum = 0;
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 4; ++i) {
      const uint8_t byte = w.qs[c][r * 4 + i];
      sum += v(byte & 0x0F) * a.qs[4 * c + i] + v(byte >> 4) * a.qs[16 + 4 * c + i];
    }
  return sum;
}
// Σ q_w·q_a of row r with the unsigned 5-bit codes (the offset 16 is taken off later).
template <DType>
int32_t RowSum(const BlockQ5_0x8& w, const BlockQ8_0& a, int r) {
  int32_t sum = 0;
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 4; ++i) {
      const uint8_t byte = w.qs[c][r * 4 + i], fifth = w.qh[r * 4 + i];
      const int lo = (byte & 0x0F) | ((fifth >> c) & 1) << 4, hi = (byte >> 4) | ((fifth >> (4 + c)) & 1) << 4;
      sum += lo * a.qs[4 * c + i] + hi * a.qs[16 + 4 * c + i];
    }
  return sum;
}
template <DType>
int32_t RowSum(const BlockQ8_0x8& w, const BlockQ8_0& a, int r) {
  int32_t sum = 0;
  for (int c = 0; c < 8; ++c)
    for (int i = 0; i < 4; ++i) sum += w.qs[c][r * 4 + i] * a.qs[4 * c + i];
  return sum;
}

template <class Packed, DType kType>
void ReferenceGemm(const void* panel_bytes, int64_t nb, const uint8_t* a, size_t a_stride, const int32_t* a_sums,
                   int64_t T, float* y, int64_t y_stride) {
  const auto* panel = static_cast<const Packed*>(panel_bytes);
  constexpr int32_t offset = kType == DType::kQ4_0 ? 8 : kType == DType::kQ5_0 ? 16 : 0;  // codes stored + 8 / + 16
  for (int64_t t = 0; t < T; ++t) {
    const auto* act = reinterpret_cast<const BlockQ8_0*>(a + t * a_stride);
    for (int r = 0; r < kPackRows; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t sum = RowSum<kType>(panel[b], act[b], r);
        if (offset) sum -= offset * a_sums[t * nb + b];
        const float d = Fp16ToFloat(panel[b].d[r]) * Fp16ToFloat(act[b].d);
        acc = std::fma(d, (float)sum, acc);
      }
      y[t * y_stride + r] = acc;
    }
  }
}

}  // namespace

PackedGemmFn PackedGemmReference(DType type) {
  switch (type) {
    case DType::kQ4_0: return ReferenceGemm<BlockQ4_0x8, DType::kQ4_0>;
    case DType::kIQ4_NL: return ReferenceGemm<BlockQ4_0x8, DType::kIQ4_NL>;
    case DType::kQ5_0: return ReferenceGemm<BlockQ5_0x8, DType::kQ5_0>;
    case DType::kQ8_0: return ReferenceGemm<BlockQ8_0x8, DType::kQ8_0>;
    default: return nullptr;
  }
}

std::vector<NamedPackedGemm> PackedGemmTwins(DType type) {
  std::vector<NamedPackedGemm> twins;
  auto add = [&](bool runs, const char* name, PackedGemmFn fn) {
    if (runs && fn) twins.push_back({name, fn});
  };
  add(CpuHasAmxInt8(), "amx", AmxPackedGemm(type));
  add(CpuHasAvx512Vnni(), "avx512vnni", Avx512VnniPackedGemm(type));
  add(CpuHasAvxVnni(), "avxvnni", AvxVnniPackedGemm(type));
  add(CpuHasAvx2FmaF16c(), "avx2", Avx2PackedGemm(type));
  return twins;
}

PackedGemm2Fn FastPackedGemmTwoPanels(DType type) { return CpuHasAmxInt8() ? AmxPackedGemmTwoPanels(type) : nullptr; }

PackedGemmFn FastPackedGemm(DType type) {
  if (CpuHasAmxInt8())
    if (PackedGemmFn f = AmxPackedGemm(type)) return f;
  if (CpuHasAvx512Vnni())
    if (PackedGemmFn f = Avx512VnniPackedGemm(type)) return f;
  if (CpuHasAvxVnni())
    if (PackedGemmFn f = AvxVnniPackedGemm(type)) return f;
  return CpuHasAvx2FmaF16c() ? Avx2PackedGemm(type) : nullptr;
}

void MatMulPacked(const PackedMatrix& p, const float* x, int64_t T, float* y, int threads) {
  const PackedGemmFn gemm = FastPackedGemm(p.type);
  SMELT_ASSERT(gemm);
  const int64_t C = p.cols, OC = p.rows, nb = p.blocks_per_row();
  const size_t a_bytes = EncodedRowBytes(DType::kQ8_0, C);
  std::vector<uint8_t> encoded(a_bytes * (size_t)T);
  std::vector<int32_t> sums(EncodedRowSums(DType::kQ8_0, C) * T);  // Q4_0's offset term needs them
  EncodedRows a;
  a.type = DType::kQ8_0, a.data = encoded.data(), a.sums = sums.data();
  EncodeRows(x, T, C, a);
  const int64_t panels = p.panels();
  // Work items of one panel, or of two where the CPU has a two-panel kernel (the same bits).
  const PackedGemm2Fn gemm2 = FastPackedGemmTwoPanels(p.type);
  const int64_t per_item = gemm2 ? 2 : 1, items = (panels + per_item - 1) / per_item;
  threads = (int)std::max<int64_t>(1, std::min<int64_t>(threads, items));
  if (C * OC * T < kMinParallelWork) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t q = item * per_item, r0 = q * kPackRows;
    const int64_t lanes = (gemm2 && q + 1 < panels) ? 2 * kPackRows : kPackRows;
    auto product = [&](float* out, int64_t ld) {
      if (lanes == 2 * kPackRows) {
        gemm2(p.panel(q), p.panel(q + 1), nb, encoded.data(), a_bytes, sums.data(), T, out, ld);
      } else {
        gemm(p.panel(q), nb, encoded.data(), a_bytes, sums.data(), T, out, ld);
      }
    };
    if (r0 + lanes <= OC) {
      product(y + r0, OC);
      continue;
    }
    std::vector<float> tail(T * lanes);  // a padded panel: only its real rows are written
    product(tail.data(), lanes);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = r0; r < OC; ++r) y[t * OC + r] = tail[t * lanes + (r - r0)];
  }
}

}  // namespace smelt
