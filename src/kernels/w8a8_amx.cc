// The AMX twin of the w8a8 row dot (ReferenceQDot(kW8A8): per-row int8 weights against per-token
// int8 activations, formats/per_channel.h) for prompts: 16 weight rows against 16 tokens at a time,
// one tile product per 64 columns accumulating the whole row's int32 sums in one tile (no block
// scales to apply on the way), then the reference's one f32 step per output,
//   out = (float) Σ q_w·q_a · (d_w·d_a),
// so every output is the same bits as the row dot. Tiles:
//   A (4)    = 16 tokens' 64 codes, straight from the encoded rows (the last, partial 64 columns
//              from a zero-padded copy);
//   B (6, 7) = the 16 rows' 64 codes in VNNI order (tile row k: codes 4k .. 4k+3 of each row),
//              written once per call;
//   C (0, 1) = even and odd column groups, added at the end.
// The bitmask rows against per-token int8 activations (sp50_w8a8, sp70_w8a8) use the same tiles,
// their codes expanded into place while the B tiles are written (vpexpandb: CpuHasAvx512Vbmi2()),
// and so does s24_w4a8, one scale step per 64 columns (below; CpuHasAvx512Vbmi()), and sp70_w4a8,
// two tile products per 64 columns (below; CpuHasAvx512Vbmi2()).
// Only these functions carry the target attribute; dispatch: CpuHasAmxInt8().
#include "kernels/amx_int8_gemm.h"

#include "core/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "core/gcc_avx512_warnings_off.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "formats/per_channel.h"
#include "formats/sparse24.h"
#include "formats/sparse_mask.h"
#include "kernels/amx_tiles.h"
#include "kernels/s24w4_avx512.h"
#include "kernels/sparse_w4.h"
#include "kernels/sparse_w4_avx512.h"
#include "kernels/transpose_avx512.h"

#define SMELT_AMX_W8 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi2,amx-tile,amx-int8")))

namespace smelt {
namespace {

constexpr int kGroup = 64;            // columns per tile product
constexpr int kW8TileBytes = 16 * 64;  // 16 tile rows × 16 weight rows × 4 codes

// The B tiles of rows w (n of them; rows past n, columns past C zeros) into tiles, one per 64
// columns.
SMELT_AMX_W8 void PrepareW8Rows(const uint8_t* w, size_t w_stride, int64_t n, int64_t C, uint8_t* tiles) {
  const int64_t groups = (C + kGroup - 1) / kGroup;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t left = std::min<int64_t>(kGroup, C - g * kGroup);
    const __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
    __m512i z[16];
    for (int r = 0; r < 16; ++r)
      z[r] = r < n ? _mm512_maskz_loadu_epi8(m, w + r * w_stride + sizeof(RowHeaderI8) + g * kGroup)
                   : _mm512_setzero_si512();
    StoreTransposed16(z, tiles + g * kW8TileBytes);
  }
}

// The same tiles from bitmask rows of capacity Cap (sp50_w8a8, sp70_w8a8: formats/sparse_mask.h,
// the same f32 row scale first): each row's codes expanded into place 64 columns at a time, a code
// cursor per row. Set bits past a row's capacity read zeros (a copy of its last codes, zero-padded),
// as the row dot counts them.
template <int Cap>
SMELT_AMX_W8 void PrepareMaskRows(const uint8_t* w, size_t w_stride, int64_t n, int64_t C, uint8_t* tiles) {
  const int64_t groups = (C + kGroup - 1) / kGroup;
  SparseMaskRowView row[16];  // codes: each row's cursor
  for (int r = 0; r < n; ++r) row[r] = ViewSparseMaskRow(w + r * w_stride, C, Cap);
  for (int64_t g = 0; g < groups; ++g) {
    __m512i z[16];
    for (int r = 0; r < 16; ++r) {
      if (r >= n) {
        z[r] = _mm512_setzero_si512();
        continue;
      }
      SparseMaskRowView& v = row[r];
      const uint64_t hi = 2 * g + 1 < v.blocks ? SparseMaskWord(v.masks, 2 * g + 1) : 0;
      const uint64_t m = SparseMaskWord(v.masks, 2 * g) | hi << 32;
      const int64_t set = __builtin_popcountll(m);
      if (v.codes + set <= v.end) {
        z[r] = _mm512_maskz_expandloadu_epi8(m, v.codes);
        v.codes += set;
      } else {  // past the capacity: the row's remaining codes, then zeros
        uint8_t rest[64] = {};
        std::memcpy(rest, v.codes, (size_t)(v.end - v.codes));
        z[r] = _mm512_maskz_expandloadu_epi8(m, rest);
        v.codes = v.end;
      }
    }
    StoreTransposed16(z, tiles + g * kW8TileBytes);
  }
}

// The f32 scales that open n ≤ 16 rows (w8a8's and the bitmask rows' header), zeros past n.
SMELT_AMX_W8 inline __m512 RowScales(const uint8_t* w, size_t w_stride, int64_t n) {
  float dw[16] = {};
  for (int r = 0; r < n; ++r) std::memcpy(&dw[r], w + r * w_stride, sizeof(float));
  return _mm512_loadu_ps(dw);
}

// C tiles 0 and 1 into sums[0], sums[1] (16 int32 per token row).
SMELT_AMX_W8 inline void StoreSumTiles(int32_t (*sums)[16][16]) {
  _tile_stored(0, sums[0], 64);
  _tile_stored(1, sums[1], 64);
  TileMemoryBarrier();
}

// Tiles for nt tokens: C 0 and 1 (nt × 16 int32), A 4 (nt × 64 codes), B 6 and 7 (16 × 64).
SMELT_AMX_W8 inline void ConfigureW8Tiles(int nt) {
  TileConfig cfg;
  for (int c = 0; c < 2; ++c) cfg.rows[c] = (uint8_t)nt, cfg.colsb[c] = 64;
  cfg.rows[4] = (uint8_t)nt, cfg.colsb[4] = 64;
  for (int b : {6, 7}) cfg.rows[b] = 16, cfg.colsb[b] = 64;
  LoadTileConfig(cfg);
}

// sp70_w4a8 (formats/sparse_mask.h) on the same tiles, twice: a stored weight's integer s·q
// (|s·q| ≤ 8·255) is 16·(s_hi·q) + s_lo·q with s = 16·s_hi + s_lo, both parts within ±120, so
// each 64 columns take two tile products, with B tiles of s_hi·q and of s_lo·q placed at the
// weights' columns. Their int32 sums give the row dot's integer exactly, 16·Σhi + Σlo (in int64),
// then its one f32 step. Each row's codes are decoded in stored order 64 at a time
// (sparse_w4::Codes64), the parts formed by two vpmaddubsw per part (even and odd bytes), and
// expanded to their columns as the bitmask rows' codes are (set bits past the capacity read the
// zeros after the parts).
constexpr size_t kW4PartsBytes(int64_t C) { return (size_t)(SparseW4Capacity(C, kSp70W4Cap) + 64); }

// Bytes s_i·q_i of 64 pairs (|s_i·q_i| ≤ 127; s_i unsigned, q_i signed).
SMELT_AMX_W8 inline __m512i ByteProducts(__m512i s, __m512i q) {
  const __m512i low_bytes = _mm512_set1_epi16(0x00FF);
  const __m512i even = _mm512_maddubs_epi16(_mm512_and_si512(s, low_bytes), q);     // s_2i·q_2i
  const __m512i odd = _mm512_maddubs_epi16(_mm512_andnot_si512(low_bytes, s), q);   // s_2i+1·q_2i+1
  return _mm512_or_si512(_mm512_and_si512(even, low_bytes), _mm512_slli_epi16(odd, 8));
}

// The B tiles of n sp70_w4a8 rows: for 64 columns g, the s_hi·q tile at tiles + 2g·kW8TileBytes
// and the s_lo·q tile after it. parts: scratch for 16 rows' two parts in stored order.
SMELT_AMX_W8 void PrepareW4Rows(const uint8_t* w, size_t w_stride, int64_t n, int64_t C, uint8_t* tiles, int8_t* parts) {
  const size_t stride = kW4PartsBytes(C);
  // Byte j of 128-bit lane i: byte i of the four multipliers.
  const __m512i run_of_lane = _mm512_set_epi64(0x0303030303030303LL, 0x0303030303030303LL, 0x0202020202020202LL,
                                               0x0202020202020202LL, 0x0101010101010101LL, 0x0101010101010101LL, 0, 0);
  SparseMaskW4RowView row[16];
  int64_t cursor[16] = {};
  for (int r = 0; r < n; ++r) {
    row[r] = ViewSparseMaskW4Row(w + r * w_stride, C, kSp70W4Cap);
    int8_t* hi = parts + 2 * r * stride;
    int8_t* lo = hi + stride;
    for (int64_t first = 0; first < row[r].capacity; first += 64) {
      const __m512i q = sparse_w4::Codes64(row[r], first);
      const __m512i s = _mm512_shuffle_epi8(_mm512_set1_epi32((int)sparse_w4::RunMultipliers(row[r], first)), run_of_lane);
      const __m512i nibble = _mm512_set1_epi8(0x0F);
      _mm512_storeu_si512(hi + first, ByteProducts(_mm512_and_si512(_mm512_srli_epi16(s, 4), nibble), q));
      _mm512_storeu_si512(lo + first, ByteProducts(_mm512_and_si512(s, nibble), q));
    }
    // Past the capacity (a last chunk's unused lanes included): zeros.
    std::memset(hi + row[r].capacity, 0, 64);
    std::memset(lo + row[r].capacity, 0, 64);
  }
  for (int64_t g = 0; g < C / kGroup; ++g) {
    __m512i z_hi[16], z_lo[16];
    for (int r = 0; r < 16; ++r) {
      if (r >= n) {
        z_hi[r] = z_lo[r] = _mm512_setzero_si512();
        continue;
      }
      const uint64_t m = sparse_w4::GroupMask(row[r].masks, g);
      const int8_t* hi = parts + 2 * r * stride;
      z_hi[r] = _mm512_maskz_expandloadu_epi8(m, hi + cursor[r]);
      z_lo[r] = _mm512_maskz_expandloadu_epi8(m, hi + stride + cursor[r]);
      cursor[r] = std::min<int64_t>(cursor[r] + __builtin_popcountll(m), row[r].capacity);
    }
    StoreTransposed16(z_hi, tiles + 2 * g * kW8TileBytes);
    StoreTransposed16(z_lo, tiles + (2 * g + 1) * kW8TileBytes);
  }
}

SMELT_AMX_W8 void AmxW4A8GemmImpl(const uint8_t* w, size_t w_stride, int64_t n, const uint8_t* a, size_t a_stride,
                                  int64_t T, int64_t C, float* out, int64_t ld, float* scratch) {
  const int64_t groups = C / kGroup;  // C is whole blocks of 256
  // Two B tiles per 64 columns, then 16 rows' two parts: 42·C + 2 KiB bytes of the 64·C.
  SMELT_ASSERT(2 * groups * kW8TileBytes + 32 * kW4PartsBytes(C) <= (size_t)PromptGemmScratchFloats(C) * sizeof(float));
  auto* tiles = reinterpret_cast<uint8_t*>(scratch);
  PrepareW4Rows(w, w_stride, n, C, tiles, reinterpret_cast<int8_t*>(tiles + 2 * groups * kW8TileBytes));
  const __m512 d_w = RowScales(w, w_stride, n);
  const __mmask16 rows = (__mmask16)((1u << n) - 1);
  const long stride = (long)a_stride;
  alignas(64) int32_t sums[2][16][16];
  TileShape shape;
  for (int64_t t0 = 0; t0 < T; t0 += 16) {
    const int nt = (int)std::min<int64_t>(16, T - t0);
    shape.Use(nt, ConfigureW8Tiles);
    const uint8_t* codes = a + t0 * a_stride + sizeof(RowHeaderI8);
    TileMemoryBarrier();
    _tile_zero(0);
    _tile_zero(1);
    for (int64_t g = 0; g < groups; ++g) {
      _tile_loadd(4, codes + g * kGroup, stride);
      _tile_loadd(6, tiles + 2 * g * kW8TileBytes, 64);
      _tile_dpbssd(0, 4, 6);
      _tile_loadd(7, tiles + (2 * g + 1) * kW8TileBytes, 64);
      _tile_dpbssd(1, 4, 7);
    }
    StoreSumTiles(sums);
    for (int t = 0; t < nt; ++t) {
      const float da = ViewI8Row(a + (t0 + t) * a_stride).d;
      const __m512i hi = _mm512_load_si512(sums[0][t]), lo = _mm512_load_si512(sums[1][t]);
      // 16·hi + lo in int64, then (float) as the row dot converts its int64 sum.
      auto total = [&](int half) SMELT_AMX_W8 {
        const __m512i h = _mm512_cvtepi32_epi64(half ? _mm512_extracti64x4_epi64(hi, 1) : _mm512_castsi512_si256(hi));
        const __m512i l = _mm512_cvtepi32_epi64(half ? _mm512_extracti64x4_epi64(lo, 1) : _mm512_castsi512_si256(lo));
        return _mm512_cvtepi64_ps(_mm512_add_epi64(_mm512_slli_epi64(h, 4), l));
      };
      const __m512 sum = _mm512_insertf32x8(_mm512_castps256_ps512(total(0)), total(1), 1);
      _mm512_mask_storeu_ps(out + (t0 + t) * ld, rows, _mm512_mul_ps(sum, _mm512_mul_ps(d_w, _mm512_set1_ps(da))));
    }
  }
}

template <void (*Prepare)(const uint8_t*, size_t, int64_t, int64_t, uint8_t*)>
SMELT_AMX_W8 void AmxW8A8GemmImpl(const uint8_t* w, size_t w_stride, int64_t n, const uint8_t* a, size_t a_stride,
                                  int64_t T, int64_t C, float* out, int64_t ld, float* scratch) {
  const int64_t full = C / kGroup, groups = (C + kGroup - 1) / kGroup;
  auto* tiles = reinterpret_cast<uint8_t*>(scratch);
  Prepare(w, w_stride, n, C, tiles);
  const __m512 d_w = RowScales(w, w_stride, n);
  const __mmask16 rows = (__mmask16)((1u << n) - 1);
  const long stride = (long)a_stride;
  alignas(64) int32_t sums[2][16][16];
  alignas(64) int8_t tail[16][kGroup];  // the last, partial group of columns, zero-padded
  TileShape shape;
  for (int64_t t0 = 0; t0 < T; t0 += 16) {
    const int nt = (int)std::min<int64_t>(16, T - t0);
    shape.Use(nt, ConfigureW8Tiles);
    const uint8_t* codes = a + t0 * a_stride + sizeof(RowHeaderI8);
    if (groups > full) {
      std::memset(tail, 0, sizeof tail);
      for (int t = 0; t < nt; ++t) std::memcpy(tail[t], codes + t * a_stride + full * kGroup, (size_t)(C - full * kGroup));
    }
    TileMemoryBarrier();
    _tile_zero(0);
    _tile_zero(1);
    for (int64_t g = 0; g < groups; ++g) {
      if (g < full) {
        _tile_loadd(4, codes + g * kGroup, stride);
      } else {
        _tile_loadd(4, tail, kGroup);
      }
      if (g % 2 == 0) {
        _tile_loadd(6, tiles + g * kW8TileBytes, 64);
        _tile_dpbssd(0, 4, 6);
      } else {
        _tile_loadd(7, tiles + g * kW8TileBytes, 64);
        _tile_dpbssd(1, 4, 7);
      }
    }
    StoreSumTiles(sums);
    for (int t = 0; t < nt; ++t) {
      const float da = ViewI8Row(a + (t0 + t) * a_stride).d;
      const __m512i s = _mm512_add_epi32(_mm512_load_si512(sums[0][t]), _mm512_load_si512(sums[1][t]));
      _mm512_mask_storeu_ps(out + (t0 + t) * ld, rows,
                            _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(d_w, _mm512_set1_ps(da))));
    }
  }
}

// s24_w4a8 (formats/sparse24.h) on the same tiles: each 64-column group is one half of a block of
// 128, whose codes share one scale per row, so each group's int32 sums are scaled on their own,
// in the row dot's order: per output sum += d_half · (float) Σ q·q_a over the groups in column
// order, then sum · d_a (DotS24W4A8Ref's steps, so the same bits). Each group's B tile holds the
// rows' codes placed at their columns: for column j (group G = j / 4, k = j % 4) the group's two
// slots are fixed, so two vpermb fetch their codes and positions, and a code lands where its
// position is k (two slots naming one column add, as the decoder adds them).
struct S24W4ColumnTables {
  alignas(64) uint8_t slot[2][2][64];  // [half][pair member][column]: the slot that may land there
  alignas(64) uint8_t column[2][64];   // [half][column]: the block-relative column 64·half + j
};
constexpr S24W4ColumnTables kS24W4Columns = [] {
  S24W4ColumnTables t{};
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 64; ++j) {
      const int G = 16 * h + j / 4;
      t.slot[h][0][j] = (uint8_t)S24W4PairSlot(G, 0);
      t.slot[h][1][j] = (uint8_t)S24W4PairSlot(G, 1);
      t.column[h][j] = (uint8_t)(64 * h + j);
    }
  return t;
}();

#define SMELT_AMX_S24 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,gfni,amx-tile,amx-int8")))

// Half h of a block: its 64 columns' codes (int8, zeros where nothing is stored), from the
// block's 64 slot codes q and their columns pos.
SMELT_AMX_S24 inline __m512i S24W4Columns(__m512i q, __m512i pos, int h) {
  const __m512i s0 = _mm512_load_si512(kS24W4Columns.slot[h][0]), s1 = _mm512_load_si512(kS24W4Columns.slot[h][1]);
  const __m512i column = _mm512_load_si512(kS24W4Columns.column[h]);
  const __mmask64 at0 = _mm512_cmpeq_epi8_mask(_mm512_permutexvar_epi8(s0, pos), column);
  const __mmask64 at1 = _mm512_cmpeq_epi8_mask(_mm512_permutexvar_epi8(s1, pos), column);
  const __m512i first = _mm512_maskz_mov_epi8(at0, _mm512_permutexvar_epi8(s0, q));
  return _mm512_mask_add_epi8(first, at1, first, _mm512_permutexvar_epi8(s1, q));
}

// The B tiles (one per 64 columns) of n s24_w4a8 rows and each group's 16 row scales; each
// block's codes and columns decoded once for its two groups.
SMELT_AMX_S24 void PrepareS24W4Rows(const uint8_t* w, size_t w_stride, int64_t n, int64_t C, uint8_t* tiles, float* scales) {
  const s24w4::Tables tables = s24w4::LoadTables();
  for (int64_t i = 0; i < C / kQKS24W4; ++i) {
    __m512i q[16], pos[16];
    for (int r = 0; r < n; ++r) {
      const uint8_t* blk = w + r * w_stride + sizeof(RowHeaderS24W4) + i * sizeof(BlockS24W4);
      q[r] = s24w4::Codes(blk, s24w4::SignExtendMatrix());
      pos[r] = s24w4::Positions(tables, blk);
    }
    for (int h = 0; h < 2; ++h) {
      const int64_t g = 2 * i + h;
      __m512i z[16];
      for (int r = 0; r < 16; ++r) {
        const uint8_t* blk = w + r * w_stride + sizeof(RowHeaderS24W4) + i * sizeof(BlockS24W4);
        z[r] = r < n ? S24W4Columns(q[r], pos[r], h) : _mm512_setzero_si512();
        scales[16 * g + r] = r < n ? ReadBf16(blk + 2 * h) : 0.0f;
      }
      StoreTransposed16(z, tiles + g * kW8TileBytes);
    }
  }
}

// Tiles for nt tokens: C 0 (nt × 16 int32), A 4 (nt × 64 codes), B 6 (16 × 64).
SMELT_AMX_S24 void ConfigureS24Tiles(int nt) {
  TileConfig cfg;
  cfg.rows[0] = (uint8_t)nt, cfg.colsb[0] = 64;
  cfg.rows[4] = (uint8_t)nt, cfg.colsb[4] = 64;
  cfg.rows[6] = 16, cfg.colsb[6] = 64;
  LoadTileConfig(cfg);
}

SMELT_AMX_S24 void AmxS24W4A8GemmImpl(const uint8_t* w, size_t w_stride, int64_t n, const uint8_t* a, size_t a_stride,
                                      int64_t T, int64_t C, float* out, int64_t ld, float* scratch) {
  const int64_t groups = C / kGroup;  // C is whole blocks of 128
  auto* tiles = reinterpret_cast<uint8_t*>(scratch);
  float* scales = scratch + groups * kW8TileBytes / sizeof(float);
  PrepareS24W4Rows(w, w_stride, n, C, tiles, scales);
  const __mmask16 rows = (__mmask16)((1u << n) - 1);
  const long stride = (long)a_stride;
  alignas(64) int32_t sums[16][16];
  alignas(64) float acc[16][16];
  TileShape shape;
  for (int64_t t0 = 0; t0 < T; t0 += 16) {
    const int nt = (int)std::min<int64_t>(16, T - t0);
    shape.Use(nt, ConfigureS24Tiles);
    const uint8_t* codes = a + t0 * a_stride + sizeof(RowHeaderI8);
    for (int t = 0; t < nt; ++t) _mm512_store_ps(acc[t], _mm512_setzero_ps());
    TileMemoryBarrier();
    for (int64_t g = 0; g < groups; ++g) {
      _tile_zero(0);
      _tile_loadd(4, codes + g * kGroup, stride);
      _tile_loadd(6, tiles + g * kW8TileBytes, 64);
      _tile_dpbssd(0, 4, 6);
      _tile_stored(0, sums, 64);
      TileMemoryBarrier();
      const __m512 d = _mm512_loadu_ps(scales + 16 * g);
      for (int t = 0; t < nt; ++t) {
        const __m512 term = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_load_si512(sums[t])));
        _mm512_store_ps(acc[t], _mm512_add_ps(_mm512_load_ps(acc[t]), term));
      }
    }
    for (int t = 0; t < nt; ++t) {
      float da;
      std::memcpy(&da, a + (t0 + t) * a_stride, sizeof da);
      _mm512_mask_storeu_ps(out + (t0 + t) * ld, rows, _mm512_mul_ps(_mm512_load_ps(acc[t]), _mm512_set1_ps(da)));
    }
  }
}

#undef SMELT_AMX_S24

}  // namespace

// Each kernel has the row dots' bits, so it may serve decoding batches (PromptGemm::from_tokens):
// from 8 tokens for w8a8, whose rows go to the tiles as they are, and from 10 for the sparse rows,
// which are expanded first (the 220M models at 1 thread against the row kernels: w8a8 level at 6
// tokens and ahead at 8; the sparse types level or behind at 8, ahead from 10).
constexpr int64_t kDenseFromTokens = 8, kSparseFromTokens = 10;

PromptGemm AmxW8A8Gemm(DType type) {
  if (!CpuHasAmxInt8()) return {};
  switch (type) {
    case DType::kW8A8: return {AmxW8A8GemmImpl<PrepareW8Rows>, nullptr, kDenseFromTokens};
    case DType::kSP50_W8A8: return CpuHasAvx512Vbmi2() ? PromptGemm{AmxW8A8GemmImpl<PrepareMaskRows<16>>, nullptr, kSparseFromTokens} : PromptGemm{};
    case DType::kSP70_W8A8: return CpuHasAvx512Vbmi2() ? PromptGemm{AmxW8A8GemmImpl<PrepareMaskRows<10>>, nullptr, kSparseFromTokens} : PromptGemm{};
    case DType::kS24_W4A8: return CpuHasAvx512Vbmi() ? PromptGemm{AmxS24W4A8GemmImpl, nullptr, kSparseFromTokens} : PromptGemm{};
    case DType::kSP70_W4A8: return CpuHasAvx512Vbmi2() ? PromptGemm{AmxW4A8GemmImpl, nullptr, kSparseFromTokens} : PromptGemm{};
    default: return {};
  }
}

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
PromptGemm AmxW8A8Gemm(DType) { return {}; }
}  // namespace smelt

#endif

#undef SMELT_AMX_W8
