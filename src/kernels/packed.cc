#include "kernels/packed.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/cpu.h"
#include "core/error.h"
#include "formats/activation.h"
#include "formats/bitpack.h"
#include "formats/group_int.h"
#include "formats/iq4_nl.h"
#include "formats/k_quants.h"
#include "formats/nf4.h"
#include "formats/q4_0.h"
#include "formats/q4_1.h"
#include "formats/q5_0.h"
#include "formats/q5_1.h"
#include "formats/q8_0.h"
#include "formats/types.h"
#include "kernels/fused.h"
#include "kernels/matmul.h"
#include "kernels/parallel.h"
#include "kernels/prompt_gemm.h"

namespace smelt {

DType PackedLayoutType(DType source) {
  const DType ggml = GroupIntGgmlType(source);
  return ggml == DType::kF32 ? source : ggml;
}

bool CanPack(const Tensor& w) {
  // The packed types are the ones with a reference product.
  const DType layout = PackedLayoutType(w.type);
  const int64_t block = std::max<int64_t>(PackedBySuperBlock(layout) ? kQK_K : 32, Traits(w.type).block_size);
  return PackedGemmReference(layout) != nullptr && w.n_dims == 2 && w.ne[0] % block == 0 && w.data && w.nrows() > 0;
}

namespace {

// Chunk c of `chunks` (kPackRows lanes of `width` bytes each) lane `lane` ↔ bytes c·width .. of a row.
template <bool kUnpack>
void MoveChunks(uint8_t* row, uint8_t* chunks, int n, int width, int64_t lane) {
  for (int c = 0; c < n; ++c) {
    uint8_t* packed = chunks + (c * kPackRows + lane) * width;
    if constexpr (kUnpack) {
      std::memcpy(row + c * width, packed, width);
    } else {
      std::memcpy(packed, row + c * width, width);
    }
  }
}

// A super-block (Q2_K … Q6_K) ↔ lane `lane` of its packed block: d and dmin, then every byte
// array in its chunks (packed.h).
template <bool kUnpack, class Src, class Packed>
void MoveSuperBlock(Src& row, Packed& panel, int64_t lane) {
  if constexpr (kUnpack) {
    row.d = panel.d[lane];
  } else {
    panel.d[lane] = row.d;
  }
  if constexpr (requires { row.dmin; }) {
    if constexpr (kUnpack) {
      row.dmin = panel.dmin[lane];
    } else {
      panel.dmin[lane] = row.dmin;
    }
  }
  auto move = [&](uint8_t* bytes, auto& chunks) {
    constexpr int n = sizeof(chunks) / sizeof(chunks[0]);
    MoveChunks<kUnpack>(bytes, &chunks[0][0], n, sizeof(chunks[0]) / kPackRows, lane);
  };
  move(reinterpret_cast<uint8_t*>(row.scales), panel.scales);  // Q6_K's are signed bytes
  if constexpr (requires { row.hmask; }) move(row.hmask, panel.hmask);
  if constexpr (requires { row.qh; }) move(row.qh, panel.qh);
  if constexpr (requires { row.ql; }) {
    move(row.ql, panel.ql);
  } else {
    move(row.qs, panel.qs);
  }
}

template <class Src, class Packed, bool kUnpack>
  requires requires(Src s) { s.scales; }  // the super-block types
void MoveRow(std::conditional_t<kUnpack, Src, const Src>* row_blocks,
             std::conditional_t<kUnpack, const Packed, Packed>* panel, int64_t nb, int64_t lane) {
  for (int64_t b = 0; b < nb; ++b)
    MoveSuperBlock<kUnpack>(const_cast<Src&>(row_blocks[b]), const_cast<Packed&>(panel[b]), lane);
}

// NF4 (64 weights, one scale) ↔ two packed blocks of 32 with that scale, in Q4_0's nibble order:
// byte j of half h holds code 32h + j (low nibble) and code 32h + 16 + j (high nibble).
template <class Src, class Packed, bool kUnpack>
  requires std::is_same_v<Src, BlockNF4>
void MoveRow(std::conditional_t<kUnpack, Src, const Src>* row_blocks,
             std::conditional_t<kUnpack, const Packed, Packed>* panel, int64_t nb, int64_t lane) {
  for (int64_t b = 0; b < nb / 2; ++b) {
    auto& src = row_blocks[b];
    uint8_t codes[kQKNF4];
    if constexpr (kUnpack) {
      src.d = panel[2 * b].d[lane];
    } else {
      for (int j = 0; j < kQKNF4; ++j) codes[j] = UnpackCode(src.qs, j, 4);
    }
    for (int h = 0; h < 2; ++h) {
      auto& packed = panel[2 * b + h];
      if constexpr (!kUnpack) packed.d[lane] = src.d;
      for (int j = 0; j < 16; ++j) {
        const int low = 32 * h + j, high = low + 16;
        auto& byte = packed.qs[j / 4][lane * 4 + j % 4];
        if constexpr (kUnpack) {
          codes[low] = byte & 0x0F, codes[high] = byte >> 4;
        } else {
          byte = (uint8_t)(codes[low] | codes[high] << 4);
        }
      }
    }
    if constexpr (kUnpack) PackCodes(codes, kQKNF4, 4, src.qs);
  }
}

template <class Src, class Packed, bool kUnpack>
  requires(sizeof(Src::qs) < 64 && !std::is_same_v<Src, BlockNF4>)
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
    if constexpr (requires { row_blocks[b].m; }) {
      if constexpr (kUnpack) {
        row_blocks[b].m = panel[b].m[lane];
      } else {
        panel[b].m[lane] = row_blocks[b].m;
      }
    }
    if constexpr (requires { row_blocks[b].qh; }) {  // the fifth bits (packed.h)
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

// p's panels at dst (p.size_bytes() bytes).
template <class Src, class Packed>
void PackAll(const Tensor& w, const PackedMatrix& p, uint8_t* dst) {
  const int64_t nb = p.blocks_per_row();
  constexpr int64_t kPerSource = std::is_same_v<Src, BlockNF4> ? 2 : 1;  // packed blocks per source block
  std::memset(dst, 0, p.size_bytes());  // padding rows: scale 0, codes 0
  auto* packed = reinterpret_cast<Packed*>(dst);
  // Source rows are read byte-wise (a tensor may sit at any offset of its file); the group types
  // are converted to the ggml blocks they run as.
  std::vector<Src> row(nb / kPerSource);
  const size_t row_bytes = RowBytes(w.type, p.cols);
  for (int64_t r = 0; r < p.rows; ++r) {
    const uint8_t* src = static_cast<const uint8_t*>(w.data) + (size_t)r * row_bytes;
    if (w.type != p.type) {
      GroupIntRowAsGgml(w.type, src, p.cols, row.data());
    } else {
      std::memcpy(row.data(), src, row.size() * sizeof(Src));
    }
    MoveRow<Src, Packed, false>(row.data(), packed + (r / kPackRows) * nb, nb, r % kPackRows);
  }
}

// Calls f.template operator()<Src, Packed>() with the source and packed block types of `type`.
template <class F>
void WithLayout(DType type, F&& f) {
  switch (type) {
    case DType::kQ4_0: return f.template operator()<BlockQ4_0, BlockQ4_0x8>();
    case DType::kIQ4_NL: return f.template operator()<BlockIQ4_NL, BlockQ4_0x8>();  // the same nibble layout
    case DType::kNF4: return f.template operator()<BlockNF4, BlockQ4_0x8>();  // two packed blocks per NF4 block
    case DType::kQ4_1: return f.template operator()<BlockQ4_1, BlockQ4_1x8>();
    case DType::kQ5_0: return f.template operator()<BlockQ5_0, BlockQ5_0x8>();
    case DType::kQ5_1: return f.template operator()<BlockQ5_1, BlockQ5_1x8>();
    case DType::kQ2_K: return f.template operator()<BlockQ2_K, BlockQ2_Kx8>();
    case DType::kQ3_K: return f.template operator()<BlockQ3_K, BlockQ3_Kx8>();
    case DType::kQ4_K: return f.template operator()<BlockQ4_K, BlockQ4_Kx8>();
    case DType::kQ5_K: return f.template operator()<BlockQ5_K, BlockQ5_Kx8>();
    case DType::kQ6_K: return f.template operator()<BlockQ6_K, BlockQ6_Kx8>();
    default: return f.template operator()<BlockQ8_0, BlockQ8_0x8>();
  }
}

// The shape of w's packed copy, without its panels.
PackedMatrix PackedShape(const Tensor& w) {
  SMELT_ASSERT(CanPack(w));
  PackedMatrix p;
  p.type = PackedLayoutType(w.type);
  p.rows = w.nrows();
  p.cols = w.ne[0];
  WithLayout(p.type, [&]<class Src, class Packed>() { p.block_bytes = sizeof(Packed); });
  return p;
}

}  // namespace

size_t PackedBytes(const Tensor& w) { return PackedShape(w).size_bytes(); }

namespace {

// w packed at dst (p = PackedShape(w), p.size_bytes() bytes there, inside storage).
PackedMatrix PackInto(const Tensor& w, PackedMatrix p, std::shared_ptr<HugePageBuffer> storage, uint8_t* dst) {
  WithLayout(p.type, [&]<class Src, class Packed>() { PackAll<Src, Packed>(w, p, dst); });
  p.storage = std::move(storage);
  p.base = dst;
  return p;
}

}  // namespace

PackedMatrix PackWeightsInto(const Tensor& w, std::shared_ptr<HugePageBuffer> storage, size_t offset) {
  PackedMatrix p = PackedShape(w);
  SMELT_ASSERT(storage && offset + p.size_bytes() <= storage->size());
  uint8_t* dst = storage->data() + offset;
  return PackInto(w, p, std::move(storage), dst);
}

PackedMatrix PackWeights(const Tensor& w) {
  const PackedMatrix p = PackedShape(w);  // worked out once
  auto storage = std::make_shared<HugePageBuffer>(p.size_bytes());
  uint8_t* dst = storage->data();
  return PackInto(w, p, std::move(storage), dst);
}

void UnpackRow(const PackedMatrix& p, int64_t row, void* blocks) {
  SMELT_ASSERT(row >= 0 && row < p.rows);
  const int64_t nb = p.blocks_per_row(), lane = row % kPackRows;
  const uint8_t* panel = p.panel(row / kPackRows);
  WithLayout(p.type, [&]<class Src, class Packed>() {
    MoveRow<Src, Packed, true>(static_cast<Src*>(blocks), reinterpret_cast<const Packed*>(panel), nb, lane);
  });
}

void UnpackRows(const PackedMatrix& p, int64_t row0, int64_t n, uint8_t* dst) {
  SMELT_ASSERT(row0 >= 0 && n >= 0 && row0 + n <= p.rows);
  const size_t row_bytes = RowBytes(p.type, p.cols);
  const UnpackPanelFn fast = CpuHasAvx512Vnni() ? Avx512UnpackSuperBlockPanel(p.type) : nullptr;
  for (int64_t r = row0; r < row0 + n;) {
    if (fast && r % kPackRows == 0 && r + kPackRows <= row0 + n) {
      fast(p.panel(r / kPackRows), p.blocks_per_row(), dst + (r - row0) * row_bytes, row_bytes);
      r += kPackRows;
      continue;
    }
    UnpackRow(p, r, dst + (r - row0) * row_bytes);
    ++r;
  }
}

namespace {

// Σ v(q_w)·q_a of row r of a packed block of nibbles (and fifth bits, where it has a plane) against
// an activation block (Q8_0 or Q8_1: only the codes are read), v the value of a code: the unsigned
// code (the Q4_0/Q5_0 offsets are taken off later), the codebook entry for IQ4_NL, the fixed-point
// level for NF4 (kNF4Fixed).
template <DType kType, class Packed, class Act>
int32_t RowSum(const Packed& w, const Act& a, int r) {
  auto v = [](int q) {
    return kType == DType::kIQ4_NL ? (int)kIQ4NLValues[q] : kType == DType::kNF4 ? (int)kNF4Fixed[q] : q;
  };
  int32_t sum = 0;
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 4; ++i) {
      const uint8_t byte = w.qs[c][r * 4 + i];
      int lo = byte & 0x0F, hi = byte >> 4;
      if constexpr (requires { w.qh; }) {
        const uint8_t fifth = w.qh[r * 4 + i];
        lo |= ((fifth >> c) & 1) << 4, hi |= ((fifth >> (4 + c)) & 1) << 4;
      }
      sum += v(lo) * a.qs[4 * c + i] + v(hi) * a.qs[16 + 4 * c + i];
    }
  return sum;
}
template <DType, class Act>
int32_t RowSum(const BlockQ8_0x8& w, const Act& a, int r) {
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
  using Act = PackedActivation<Packed>;
  for (int64_t t = 0; t < T; ++t) {
    const auto* act = reinterpret_cast<const Act*>(a + t * a_stride);
    for (int r = 0; r < kPackRows; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t sum = RowSum<kType>(panel[b], act[b], r);
        if (offset) sum -= offset * a_sums[t * nb + b];
        const float d = Fp16ToFloat(panel[b].d[r]) * Fp16ToFloat(act[b].d);
        acc = std::fma(d, (float)sum, acc);
        if constexpr (kPackedHasMin<Packed>) acc = std::fma(Fp16ToFloat(panel[b].m[r]), Fp16ToFloat(act[b].s), acc);
      }
      y[t * y_stride + r] = acc * PackedResultScale(kType);
    }
  }
}

// Byte `byte` of row r's array packed in 4-byte chunks (qs, qh, Q4_K's scales).
template <size_t kRows>
uint8_t ChunkByte(const uint8_t (&chunks)[kRows][kPackRows * 4], int r, int byte) {
  return chunks[byte / 4][4 * r + byte % 4];
}

// Code of weight i (0..255) of row r, and the scale and minimum of its sub-block (16 weights for
// Q2_K, Q3_K and Q6_K, 32 for Q4_K/Q5_K), in ggml's layouts (packed.h).
int SuperBlockCode(const BlockQ2_Kx8& p, int r, int i) {
  return (ChunkByte(p.qs, r, 32 * (i / 128) + i % 32) >> (2 * ((i % 128) / 32))) & 3;
}
int SuperBlockCode(const BlockQ3_Kx8& p, int r, int i) {  // signed: − 4 where the third bit is clear
  const int h = i / 128, k = (i % 128) / 32, l = i % 32;
  const int low = (ChunkByte(p.qs, r, 32 * h + l) >> (2 * k)) & 3;
  return ((ChunkByte(p.hmask, r, l) >> (4 * h + k)) & 1) ? low : low - 4;
}
int SuperBlockCode(const BlockQ6_Kx8& p, int r, int i) {  // signed: the stored code − 32
  const int h = i / 128, k = (i % 128) / 32, l = i % 32;
  const int low = (ChunkByte(p.ql, r, 64 * h + 32 * (k % 2) + l) >> (4 * (k / 2))) & 0x0F;
  const int high = (ChunkByte(p.qh, r, 32 * h + l) >> (2 * k)) & 3;
  return (low | high << 4) - 32;
}
template <class Packed>
int SuperBlockCode(const Packed& p, int r, int i) {  // Q4_K, Q5_K
  const int g = i / 64, high = (i % 64) / 32, l = i % 32;
  int code = (ChunkByte(p.qs, r, 32 * g + l) >> (4 * high)) & 0x0F;
  if constexpr (requires { p.qh; }) code |= ((ChunkByte(p.qh, r, l) >> (2 * g + high)) & 1) << 4;
  return code;
}
void SuperBlockScale(const BlockQ2_Kx8& p, int r, int j, int& sc, int& m) {
  const uint8_t byte = p.scales[j / 2][2 * r + j % 2];
  sc = byte & 0x0F, m = byte >> 4;
}
void SuperBlockScale(const BlockQ6_Kx8& p, int r, int j, int& sc, int& m) {
  sc = (int8_t)ChunkByte(p.scales, r, j), m = 0;
}
template <class Packed>
void SuperBlockScale(const Packed& p, int r, int j, int& sc, int& m) {
  uint8_t bytes[kKScaleSize];
  for (int k = 0; k < kKScaleSize; ++k) bytes[k] = ChunkByte(p.scales, r, k);
  if constexpr (std::is_same_v<Packed, BlockQ3_Kx8>) {
    sc = Q3KScale(bytes, j), m = 0;
  } else {
    uint8_t s, mm;
    GetScaleMinK4(j, bytes, &s, &mm);
    sc = s, m = mm;
  }
}

// Weights per sub-block: 16 for Q2_K, Q3_K and Q6_K, 32 for Q4_K and Q5_K.
template <class Packed>
constexpr int SubBlockWeights() {
  if constexpr (requires(Packed p) { p.ql; }) {
    return 16;
  } else {
    return sizeof(Packed::qs) == 16 * 32 ? 16 : 32;
  }
}

// The super-block types (packed.h): per row and super-block the exact isum and msum, then the two
// f32 steps.
template <class Packed>
void ReferenceGemmSuperBlock(const void* panel_bytes, int64_t nb, const uint8_t* a, size_t a_stride, const int32_t*,
                             int64_t T, float* y, int64_t y_stride) {
  constexpr int kSub = SubBlockWeights<Packed>();
  const auto* panel = static_cast<const Packed*>(panel_bytes);
  for (int64_t t = 0; t < T; ++t) {
    const auto* act = reinterpret_cast<const BlockQ8_K*>(a + t * a_stride);
    for (int r = 0; r < kPackRows; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < kQK_K / kSub; ++j) {
          int sc, m;
          SuperBlockScale(panel[b], r, j, sc, m);
          int32_t s = 0;
          for (int i = kSub * j; i < kSub * (j + 1); ++i) s += SuperBlockCode(panel[b], r, i) * act[b].qs[i];
          isum += sc * s;
          for (int k = kSub * j / 16; k < kSub * (j + 1) / 16; ++k) msum += m * act[b].bsums[k];
        }
        acc = std::fma(Fp16ToFloat(panel[b].d[r]) * act[b].d, (float)isum, acc);
        if constexpr (requires { panel[b].dmin; })
          acc = std::fma(-(Fp16ToFloat(panel[b].dmin[r]) * act[b].d), (float)msum, acc);
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
    case DType::kNF4: return ReferenceGemm<BlockQ4_0x8, DType::kNF4>;
    case DType::kQ5_0: return ReferenceGemm<BlockQ5_0x8, DType::kQ5_0>;
    case DType::kQ4_1: return ReferenceGemm<BlockQ4_1x8, DType::kQ4_1>;
    case DType::kQ5_1: return ReferenceGemm<BlockQ5_1x8, DType::kQ5_1>;
    case DType::kQ8_0: return ReferenceGemm<BlockQ8_0x8, DType::kQ8_0>;
    case DType::kQ2_K: return ReferenceGemmSuperBlock<BlockQ2_Kx8>;
    case DType::kQ3_K: return ReferenceGemmSuperBlock<BlockQ3_Kx8>;
    case DType::kQ4_K: return ReferenceGemmSuperBlock<BlockQ4_Kx8>;
    case DType::kQ5_K: return ReferenceGemmSuperBlock<BlockQ5_Kx8>;
    case DType::kQ6_K: return ReferenceGemmSuperBlock<BlockQ6_Kx8>;
    default: return nullptr;
  }
}

std::vector<NamedPackedGemm> PackedGemmTwins(DType type) {
  std::vector<NamedPackedGemm> twins;
  auto add = [&](bool runs, const char* name, PackedGemmFn fn) {
    if (runs && fn) twins.push_back({name, fn});
  };
  add(CpuHasAvx512VnniGfni(), "avx512gfni", Avx512KQuantPackedGemm(type, true));
  add(CpuHasAvx512Vnni(), "avx512", Avx512KQuantPackedGemm(type, false));
  add(CpuHasAmxInt8(), "amx", AmxPackedGemm(type));
  add(CpuHasAvx512Vnni(), "avx512vnni", Avx512VnniPackedGemm(type));
  add(CpuHasAvxVnni(), "avxvnni", AvxVnniPackedGemm(type));
  add(CpuHasAvx2FmaF16c(), "avx2", Avx2PackedGemm(type));
  return twins;
}

int64_t TileActivationBlocks(DType act, int64_t C) {
  return act == DType::kQ8_0 || act == DType::kQ8_1 ? C / 32 : 0;
}

int64_t TileScaleFloats(DType act, int64_t C) { return TileActivationBlocks(act, C) * (act == DType::kQ8_1 ? 2 : 1); }

namespace {
template <class Block>
void BlockScales(const uint8_t* a, size_t a_stride, int64_t nb, int64_t T, float* scales) {
  for (int64_t t = 0; t < T; ++t) {
    const auto* blocks = reinterpret_cast<const Block*>(a + t * a_stride);
    for (int64_t b = 0; b < nb; ++b) {
      scales[b * T + t] = Fp16ToFloat(blocks[b].d);
      if constexpr (requires { blocks[b].s; }) scales[(nb + b) * T + t] = Fp16ToFloat(blocks[b].s);
    }
  }
}

template <class Block>
void BlockPairs(const uint8_t* a, size_t a_stride, int64_t nb, int64_t T, int8_t* pairs) {
  SMELT_ASSERT(T >= 1 && T <= kPairTokens);
  for (int64_t b = 0; b < nb + nb % 2; ++b) {
    const int64_t j = b / 2, h = b % 2;
    for (int64_t t = 0; t < T; ++t) {
      int8_t* row = pairs + (j * 2 * T + h * T + t) * 64;
      std::memset(row + 32 * (1 - h), 0, 32);
      if (b < nb)
        std::memcpy(row + 32 * h, (reinterpret_cast<const Block*>(a + t * a_stride) + b)->qs, 32);
      else
        std::memset(row + 32 * h, 0, 32);
    }
  }
}
}  // namespace

void ActivationBlockScales(DType act, const uint8_t* a, size_t a_stride, int64_t nb, int64_t T, float* scales) {
  SMELT_ASSERT(act == DType::kQ8_0 || act == DType::kQ8_1);
  if (act == DType::kQ8_1) return BlockScales<BlockQ8_1>(a, a_stride, nb, T, scales);
  BlockScales<BlockQ8_0>(a, a_stride, nb, T, scales);
}

void ActivationBlockPairs(DType act, const uint8_t* a, size_t a_stride, int64_t nb, int64_t T, int8_t* pairs) {
  SMELT_ASSERT(act == DType::kQ8_0 || act == DType::kQ8_1);
  if (act == DType::kQ8_1) return BlockPairs<BlockQ8_1>(a, a_stride, nb, T, pairs);
  BlockPairs<BlockQ8_0>(a, a_stride, nb, T, pairs);
}

bool PackedGemmReadsPairs() { return CpuHasAmxInt8(); }

PackedGemm2Fn FastPackedGemmTwoPanels(DType type) {
  if (CpuHasAvx512Vnni())
    if (PackedGemm2Fn f = Avx512KQuantPackedGemmTwoPanels(type, CpuHasAvx512VnniGfni())) return f;
  return CpuHasAmxInt8() ? AmxPackedGemmTwoPanels(type) : nullptr;
}

PackedGemmFn FastPackedGemm(DType type) {
  if (CpuHasAvx512Vnni())
    if (PackedGemmFn f = Avx512KQuantPackedGemm(type, CpuHasAvx512VnniGfni())) return f;
  if (CpuHasAmxInt8())
    if (PackedGemmFn f = AmxPackedGemm(type)) return f;
  if (CpuHasAvx512Vnni())
    if (PackedGemmFn f = Avx512VnniPackedGemm(type)) return f;
  if (CpuHasAvxVnni())
    if (PackedGemmFn f = AvxVnniPackedGemm(type)) return f;
  return CpuHasAvx2FmaF16c() ? Avx2PackedGemm(type) : nullptr;
}

void MatMulPacked(const PackedMatrix& p, const float* x, int64_t T, float* y, int threads) {
  // A prompt-sized batch on a type with a blocked prompt kernel (the super-block types): as MatMul
  // runs it, on the rows restored block by block.
  if (const PromptGemm blocked = FastPromptGemm(p.type); RunsBlocked(blocked, T)) {
    const size_t w_bytes = RowBytes(p.type, p.cols);
    PromptProduct(blocked, ActivationType(p.type), x, T, p.cols, p.rows, w_bytes, kPromptGemmRows * w_bytes,
                  [&](int64_t o0, int64_t n, uint8_t* buffer) {
                    UnpackRows(p, o0, n, buffer);
                    return static_cast<const uint8_t*>(buffer);
                  },
                  y, threads);
    return;
  }
  const PackedGemmFn gemm = FastPackedGemm(p.type);
  SMELT_ASSERT(gemm);
  const int64_t C = p.cols, OC = p.rows, nb = p.blocks_per_row();
  const DType act = ActivationType(p.type);  // Q8_0, or Q8_1 for the types with a minimum
  const size_t a_bytes = EncodedRowBytes(act, C);
  std::vector<uint8_t> encoded(a_bytes * (size_t)T);
  std::vector<int32_t> sums(EncodedRowSums(act, C) * T);      // the offsets' terms need them (Q8_0 only)
  std::vector<float> scales(TileScaleFloats(act, C) * T);     // and the AMX tiles these (Q8_0, Q8_1)
  // 64-byte aligned: each of the pairs' rows is one line for the tile loads.
  const bool paired = !scales.empty() && T >= kMinPairTokens && T <= kPairTokens && PackedGemmReadsPairs();
  HugePageBuffer pairs(paired ? ActivationPairBytes(nb, T) : 0);
  EncodedRows a;
  a.type = act, a.data = encoded.data(), a.sums = sums.data(), a.scales = scales.empty() ? nullptr : scales.data();
  a.pairs = pairs.size() ? reinterpret_cast<int8_t*>(pairs.data()) : nullptr;
  EncodeRows(x, T, C, a);
  const TileActivations tiles{a.scales, a.pairs};
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
        gemm2(p.panel(q), p.panel(q + 1), nb, encoded.data(), a_bytes, sums.data(), tiles, T, out, ld);
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
