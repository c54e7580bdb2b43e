// The AMX twins of the Q2_K … Q6_K row dots (ReferenceQDot, Q8_K activations) for prompts:
// 16 weight rows against 16 tokens at a time through Intel's tile unit, with the reference's bits.
// A Q4_K/Q5_K sub-block's 6-bit scale s = 8·s_hi + s_lo (both ≤ 7), so its codes q ≤ 31 times each
// part still fit an unsigned byte (tdpbsud: signed activations, unsigned weights); per super-block
//   Σ_j s_j·Σ q·a = Σ_j Σ (q·s_lo)·a + 8·Σ_j Σ (q·s_hi)·a,
// two tile products per pair of sub-blocks (64 codes: neither part has a per-sub-block factor left)
// that accumulate over the super-block, exact in int32. The
// minimums' Σ_j m_j·Σ a come from the Q8_K block's sums of 16 by vpdpwssd, exact too. Each
// super-block then takes the reference's f32 steps in its order,
//   acc += (d_a·d)·(float) Σ s·q·a − (d_a·dmin)·(float) Σ m·a,
// so every output is the same bits as the row dot (the build keeps these products and sums apart:
// -ffp-contract=off). Tiles:
//   A (4, 5)        = 16 tokens' 64 codes of sub-blocks j, j + 1, straight from the encoded Q8_K rows;
//   B (2, 3; 6, 7)  = the rows' q·s_lo and q·s_hi of those sub-blocks in VNNI order (tile row k:
//                     codes 4k .. 4k+3 of each of the 16 rows), written once per call for every
//                     super-block;
//   C (0, 1)        = lo and hi.
// The A and B tiles alternate between two sets, so one pair's loads need not wait for the previous
// pair's products to finish reading their tiles (the same bits; 4-8 % less time for 64 tokens).
// Q6_K (signed codes, a signed scale per 16) and Q2_K/Q3_K (code·scale in one byte) below. Only
// these functions carry the target attribute; dispatch: CpuHasAmxInt8().
#include "kernels/amx_int8_gemm.h"

#include "core/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "core/gcc_avx512_warnings_off.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "formats/k_quants.h"
#include "kernels/amx_tiles.h"
#include "kernels/kquant_row_avx2.h"
#include "kernels/kquant_scales_avx512.h"
#include "kernels/transpose_avx512.h"

#define SMELT_AMX_INT8 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")))

namespace smelt {
namespace {

constexpr int kSubBlocks = kQK_K / 32;
constexpr int kSubTileBytes = 8 * 64;  // 8 tile rows (32 codes / 4) × 16 rows × 4 codes

// One super-block of the call's 16 rows, prepared: the B tiles of each sub-block (q·s_lo, then
// q·s_hi), the rows' d and dmin, and each sub-block's minimum twice per row (vpdpwssd's pairs).
struct PreparedSuperBlock {
  uint8_t lo[kSubBlocks][kSubTileBytes];
  uint8_t hi[kSubBlocks][kSubTileBytes];
  float d[16], dmin[16];
  int32_t min_pairs[kSubBlocks][16];
};
static_assert(sizeof(PreparedSuperBlock) == 2 * kSubBlocks * kSubTileBytes + 2 * 16 * 4 + kSubBlocks * 16 * 4,
              "one prepared super-block");
static_assert(sizeof(PreparedSuperBlock) <= 16 * kQK_K * sizeof(float), "fits PromptGemmScratchFloats per 256 columns");

// One 4-byte group of each of 16 rows (lane r: row r, offsets[r] bytes from base; rows outside
// `live` read as 0).
SMELT_AMX_INT8 inline __m512i GatherRows(const uint8_t* base, __m512i offsets, __mmask16 live) {
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, offsets, base, 1);
}

// Every byte of q times its lane's scale part (held in both 16-bit words of the lane): the even
// bytes by vpmaddubsw with the part in the words' low bytes, the odd ones with it in the high bytes.
// Each product fits its byte (q <= 31, part <= 7).
SMELT_AMX_INT8 inline __m512i TimesPart(__m512i q, __m512i part) {
  const __m512i odd = _mm512_maddubs_epi16(q, _mm512_slli_epi16(part, 8));
  return _mm512_or_si512(_mm512_maddubs_epi16(q, part), _mm512_slli_epi16(odd, 8));
}

// Super-block b of rows w (n of them, w_stride apart; rows past n are zeros) into p: Q4_K, or Q5_K
// (the fifth bit of each code from qh: codes up to 31, whose products with a part stay below 256).
// Everything is read by gathers of one 4-byte group per row (lane r: row r), which is already the
// tiles' column order: gather k of the code bytes 32g .. 32g + 31 is tile row k of sub-block 2g's
// B (low nibbles) and of 2g + 1's (high nibbles). Each lane's codes are multiplied by that row's
// scale part with two vpmaddubsw (even and odd bytes; every product fits its byte).
template <DType kType>
SMELT_AMX_INT8 void PrepareSuperBlock(const uint8_t* w, size_t w_stride, int64_t n, int64_t b, PreparedSuperBlock& p) {
  using Block = std::conditional_t<kType == DType::kQ4_K, BlockQ4_K, BlockQ5_K>;
  const __mmask16 live = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
  const uint8_t* base = w + b * sizeof(Block);
  const __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32((int32_t)w_stride));
  const __m512i head = GatherRows(base + offsetof(Block, d), offsets, live);  // d, then dmin
  _mm512_storeu_ps(p.d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(head)));
  _mm512_storeu_ps(p.dmin, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(head, 16))));
  // The 16 rows' scales and minimums (kernels/kquant_scales_avx512.h).
  const uint8_t* scales = base + offsetof(Block, scales);
  __m512i sc[2], m[2];
  ScalesMinsK4x16(GatherRows(scales, offsets, live), GatherRows(scales + 4, offsets, live),
                  GatherRows(scales + 8, offsets, live), sc, m);
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  const __m512i byte = _mm512_set1_epi32(0xFF), pair = _mm512_set1_epi32(0x10001);
  // Sub-block j's scale part of each row in both words of its lane (vpmaddubsw's even bytes).
  __m512i lo_part[kSubBlocks], hi_part[kSubBlocks];
  for (int j = 0; j < kSubBlocks; ++j) {
    const __m512i sj = _mm512_and_si512(_mm512_srli_epi32(sc[j / 4], 8 * (j % 4)), byte);
    const __m512i mj = _mm512_and_si512(_mm512_srli_epi32(m[j / 4], 8 * (j % 4)), byte);
    _mm512_storeu_si512(p.min_pairs[j], _mm512_mullo_epi32(mj, pair));
    lo_part[j] = _mm512_mullo_epi32(_mm512_and_si512(sj, _mm512_set1_epi32(7)), pair);
    hi_part[j] = _mm512_mullo_epi32(_mm512_srli_epi32(sj, 3), pair);
  }
  [[maybe_unused]] __m512i fifth[8];
  if constexpr (kType == DType::kQ5_K)
    for (int k = 0; k < 8; ++k) fifth[k] = GatherRows(base + offsetof(Block, qh) + 4 * k, offsets, live);
  const __m512i one = _mm512_set1_epi8(1);
  for (int g = 0; g < kSubBlocks / 2; ++g) {
    const int j = 2 * g;
    for (int k = 0; k < 8; ++k) {
      const __m512i bytes = GatherRows(base + offsetof(Block, qs) + 32 * g + 4 * k, offsets, live);
      __m512i q0 = _mm512_and_si512(bytes, nibble), q1 = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), nibble);
      if constexpr (kType == DType::kQ5_K) {  // bit j (j + 1) of each qh byte to bit 4
        q0 = _mm512_or_si512(q0, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(fifth[k], j), one), 4));
        q1 = _mm512_or_si512(q1, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(fifth[k], j + 1), one), 4));
      }
      _mm512_storeu_si512(p.lo[j] + 64 * k, TimesPart(q0, lo_part[j]));
      _mm512_storeu_si512(p.lo[j + 1] + 64 * k, TimesPart(q1, lo_part[j + 1]));
      _mm512_storeu_si512(p.hi[j] + 64 * k, TimesPart(q0, hi_part[j]));
      _mm512_storeu_si512(p.hi[j + 1] + 64 * k, TimesPart(q1, hi_part[j + 1]));
    }
  }
}

// Tiles for nt tokens and sub-blocks of `codes` columns: C 0..3 (nt × 16 int32), A 4 and 5
// (nt × codes), B 6 and 7 (codes / 4 × 64).
SMELT_AMX_INT8 void ConfigureKTiles(int nt, int codes) {
  TileConfig cfg;
  for (int c = 0; c < 4; ++c) cfg.rows[c] = (uint8_t)nt, cfg.colsb[c] = 64;
  for (int a : {4, 5}) cfg.rows[a] = (uint8_t)nt, cfg.colsb[a] = (uint16_t)codes;
  for (int b : {6, 7}) cfg.rows[b] = (uint8_t)(codes / 4), cfg.colsb[b] = 64;
  LoadTileConfig(cfg);
}

template <int kCodes>
SMELT_AMX_INT8 void ConfigureKTilesOf(int nt) {
  ConfigureKTiles(nt, kCodes);
}

// Q4_K/Q5_K's tiles for nt tokens: C 0 and 1 (nt × 16 int32), B 2, 3, 6 and 7 (64 codes / 4 × 64),
// A 4 and 5 (nt × 64 codes).
SMELT_AMX_INT8 void ConfigureQ45Tiles(int nt) {
  TileConfig cfg;
  for (int c : {0, 1}) cfg.rows[c] = (uint8_t)nt, cfg.colsb[c] = 64;
  for (int b : {2, 3, 6, 7}) cfg.rows[b] = 16, cfg.colsb[b] = 64;
  for (int a : {4, 5}) cfg.rows[a] = (uint8_t)nt, cfg.colsb[a] = 64;
  LoadTileConfig(cfg);
}

// C tiles 0..3 := 0, and their rows into sums[0..3] (16 int32 per token row).
SMELT_AMX_INT8 inline void ZeroSums() {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}
SMELT_AMX_INT8 inline void StoreSums(int32_t (*sums)[16][16]) {
  _tile_stored(0, sums[0], 64);
  _tile_stored(1, sums[1], 64);
  _tile_stored(2, sums[2], 64);
  _tile_stored(3, sums[3], 64);
  TileMemoryBarrier();
}

// The row dot's f32 step for one super-block of 16 rows against one token (DotKRef's order):
//   acc + ((d_a·d)·(float) Σ s·q·a − (d_a·dmin)·(float) Σ m·a).
SMELT_AMX_INT8 inline __m512 AddSuperBlockTerms(__m512 acc, float d_a, __m512 d, __m512 dmin, __m512i codes_sum,
                                               __m512i mins_sum) {
  const __m512 ya = _mm512_set1_ps(d_a);
  const __m512 codes_term = _mm512_mul_ps(_mm512_mul_ps(ya, d), _mm512_cvtepi32_ps(codes_sum));
  const __m512 mins_term = _mm512_mul_ps(_mm512_mul_ps(ya, dmin), _mm512_cvtepi32_ps(mins_sum));
  return _mm512_add_ps(acc, _mm512_sub_ps(codes_term, mins_term));
}

// One super-block of Q4_K/Q5_K for nt tokens: y points at the first token's Q8_K block, the
// others a_stride apart; the f32 terms go into acc[t] (the 16 rows of token t).
SMELT_AMX_INT8 void Q45SuperBlock(const PreparedSuperBlock& p, const uint8_t* y0, size_t a_stride, int nt,
                                  __m512* acc) {
  alignas(64) int32_t sums[2][16][16];
  const uint8_t* codes = y0 + offsetof(BlockQ8_K, qs);
  const long stride = (long)a_stride;
  _tile_zero(0);
  _tile_zero(1);
  // Two sub-blocks (64 codes) per product, the tile sets alternating (above).
  _tile_loadd(4, codes, stride);
  _tile_loadd(2, p.lo[0], 64);
  _tile_loadd(3, p.hi[0], 64);
  _tile_loadd(5, codes + 64, stride);
  _tile_loadd(6, p.lo[2], 64);
  _tile_loadd(7, p.hi[2], 64);
  _tile_dpbsud(0, 4, 2);
  _tile_dpbsud(1, 4, 3);
  _tile_loadd(4, codes + 128, stride);
  _tile_loadd(2, p.lo[4], 64);
  _tile_loadd(3, p.hi[4], 64);
  _tile_dpbsud(0, 5, 6);
  _tile_dpbsud(1, 5, 7);
  _tile_loadd(5, codes + 192, stride);
  _tile_loadd(6, p.lo[6], 64);
  _tile_loadd(7, p.hi[6], 64);
  _tile_dpbsud(0, 4, 2);
  _tile_dpbsud(1, 4, 3);
  _tile_dpbsud(0, 5, 6);
  _tile_dpbsud(1, 5, 7);
  _tile_stored(0, sums[0], 64);
  _tile_stored(1, sums[1], 64);
  TileMemoryBarrier();
  const __m512 d = _mm512_loadu_ps(p.d), dmin = _mm512_loadu_ps(p.dmin);  // scratch: no alignment promised
  for (int t = 0; t < nt; ++t) {
    const auto* y = reinterpret_cast<const BlockQ8_K*>(y0 + t * a_stride);
    const __m512i lo = _mm512_load_si512(sums[0][t]), hi = _mm512_load_si512(sums[1][t]);
    const __m512i codes_sum = _mm512_add_epi32(lo, _mm512_slli_epi32(hi, 3));
    __m512i mins_sum = _mm512_setzero_si512();
    int32_t pairs[kSubBlocks];  // the Q8_K sums of 16, two per sub-block
    std::memcpy(pairs, y->bsums, sizeof pairs);
    for (int j = 0; j < kSubBlocks; ++j)
      mins_sum = _mm512_dpwssd_epi32(mins_sum, _mm512_set1_epi32(pairs[j]), _mm512_loadu_si512(p.min_pairs[j]));
    acc[t] = AddSuperBlockTerms(acc[t], y->d, d, dmin, codes_sum, mins_sum);
  }
}

// What every k-quant twin shares: the rows' super-blocks prepared once into scratch, then per group
// of 16 tokens (a shorter last one) each super-block's step in column order, the sums stored at the
// end. Configure: the tiles' shapes for a group of nt tokens.
template <class Prepared, void (*Prepare)(const uint8_t*, size_t, int64_t, int64_t, Prepared&),
          void (*Step)(const Prepared&, const uint8_t*, size_t, int, __m512*), void (*Configure)(int)>
SMELT_AMX_INT8 void KGemm(const uint8_t* w, size_t w_stride, int64_t n, const uint8_t* a, size_t a_stride, int64_t T,
                          int64_t C, float* out, int64_t ld, float* scratch) {
  const int64_t nb = C / kQK_K;
  auto* prepared = reinterpret_cast<Prepared*>(scratch);
  for (int64_t b = 0; b < nb; ++b) Prepare(w, w_stride, n, b, prepared[b]);
  TileMemoryBarrier();
  const __mmask16 rows = (__mmask16)((1u << n) - 1);
  TileShape shape;
  for (int64_t t0 = 0; t0 < T; t0 += 16) {
    const int nt = (int)std::min<int64_t>(16, T - t0);
    shape.Use(nt, Configure);
    __m512 acc[16];
    for (__m512& v : acc) v = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) Step(prepared[b], a + t0 * a_stride + b * sizeof(BlockQ8_K), a_stride, nt, acc);
    for (int t = 0; t < nt; ++t) _mm512_mask_storeu_ps(out + (t0 + t) * ld, rows, acc[t]);
  }
}

// Q6_K: codes q − 32 (signed bytes) with a signed 8-bit scale per sub-block of 16, so each sub-block
// is one tile product (K = 16) and the scales multiply its int32 sums per row: Σ_j s_j·Σ (q−32)·a,
// exact in int32, then the reference's f32 steps (its minimum term is 0: acc += (d_a·d)·(float) Σ).
constexpr int kQ6SubBlocks = kQK_K / 16;
constexpr int kQ6TileBytes = 4 * 64;  // 4 tile rows (16 codes / 4) × 16 rows × 4 codes

struct PreparedQ6Block {
  uint8_t tiles[kQ6SubBlocks][kQ6TileBytes];
  int32_t scales[kQ6SubBlocks][16];
  float d[16];
};
static_assert(sizeof(PreparedQ6Block) == kQ6SubBlocks * kQ6TileBytes + kQ6SubBlocks * 16 * 4 + 16 * 4,
              "one prepared Q6_K super-block");
static_assert(sizeof(PreparedQ6Block) <= 16 * kQK_K * sizeof(float), "fits PromptGemmScratchFloats per 256 columns");

SMELT_AMX_INT8 void PrepareQ6Block(const uint8_t* w, size_t w_stride, int64_t n, int64_t b, PreparedQ6Block& p) {
  alignas(64) int8_t codes[16][kQK_K];  // row r's 256 codes − 32, in column order
  for (int r = 0; r < 16; ++r) {
    if (r >= n) {
      std::memset(codes[r], 0, sizeof codes[r]);
      for (int j = 0; j < kQ6SubBlocks; ++j) p.scales[j][r] = 0;
      p.d[r] = 0.0f;
      continue;
    }
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(w + r * w_stride) + b;
    p.d[r] = _cvtsh_ss(blk->d);
    for (int j = 0; j < kQ6SubBlocks; ++j) p.scales[j][r] = blk->scales[j];
    // Column e = 128·h + 32·q + l: low nibble of ql[64h + l + 32·(q % 2)] (q < 2) or its high
    // nibble, high two bits at bits 2q of qh[32h + l].
    const __m256i nibble = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x03);
    for (int h = 0; h < 2; ++h) {
      const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qh + 32 * h));
      for (int q = 0; q < 4; ++q) {
        __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->ql + 64 * h + 32 * (q % 2)));
        if (q >= 2) low = _mm256_srli_epi16(low, 4);
        low = _mm256_and_si256(low, nibble);
        const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(high, 2 * q), two);
        const __m256i code = _mm256_or_si256(low, _mm256_slli_epi16(hb, 4));  // 0..63, no carries across bytes
        _mm256_store_si256(reinterpret_cast<__m256i*>(codes[r] + 128 * h + 32 * q),
                           _mm256_sub_epi8(code, _mm256_set1_epi8(32)));
      }
    }
  }
  // Four sub-blocks (64 codes) per row at a time, transposed: tile rows 4s .. 4s+3 are sub-block
  // 4g + s's B.
  for (int g = 0; g < kQ6SubBlocks / 4; ++g) {
    __m512i z[16];
    for (int r = 0; r < 16; ++r) z[r] = _mm512_load_si512(codes[r] + 64 * g);
    StoreTransposed16(z, reinterpret_cast<uint8_t*>(p.tiles) + 4 * g * kQ6TileBytes);  // four tiles in a row
  }
}

// One super-block of Q6_K for nt tokens, as Q45SuperBlock.
SMELT_AMX_INT8 void Q6SuperBlock(const PreparedQ6Block& p, const uint8_t* y0, size_t a_stride, int nt, __m512* acc) {
  alignas(64) int32_t sums[4][16][16];
  const uint8_t* codes = y0 + offsetof(BlockQ8_K, qs);
  const long stride = (long)a_stride;
  __m512i total[16];
  for (__m512i& v : total) v = _mm512_setzero_si512();
  for (int j0 = 0; j0 < kQ6SubBlocks; j0 += 4) {  // four sub-blocks in flight
    ZeroSums();
    _tile_loadd(4, codes + 16 * j0, stride);
    _tile_loadd(6, p.tiles[j0], 64);
    _tile_dpbssd(0, 4, 6);
    _tile_loadd(4, codes + 16 * (j0 + 1), stride);
    _tile_loadd(7, p.tiles[j0 + 1], 64);
    _tile_dpbssd(1, 4, 7);
    _tile_loadd(4, codes + 16 * (j0 + 2), stride);
    _tile_loadd(6, p.tiles[j0 + 2], 64);
    _tile_dpbssd(2, 4, 6);
    _tile_loadd(4, codes + 16 * (j0 + 3), stride);
    _tile_loadd(7, p.tiles[j0 + 3], 64);
    _tile_dpbssd(3, 4, 7);
    StoreSums(sums);
    for (int i = 0; i < 4; ++i) {
      const __m512i scale = _mm512_loadu_si512(p.scales[j0 + i]);
      for (int t = 0; t < nt; ++t)
        total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(scale, _mm512_load_si512(sums[i][t])));
    }
  }
  const __m512 d = _mm512_loadu_ps(p.d);
  for (int t = 0; t < nt; ++t) {
    const auto* y = reinterpret_cast<const BlockQ8_K*>(y0 + t * a_stride);
    acc[t] = _mm512_add_ps(acc[t],
                           _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(y->d), d), _mm512_cvtepi32_ps(total[t])));
  }
}

// Q2_K and Q3_K: a sub-block of 16 codes of 2 or 3 bits and its 4- or 6-bit scale s multiply to
// one byte, q·s, so the scales go into the B tiles and the whole super-block is 4 tile products
// of 64 columns into one sum, Σ_j s_j·Σ q·a = Σ_e (q·s)_e·a_e, exact in int32:
//   Q2_K: q 0..3, s 0..15, q·s ≤ 45; the minimums Σ_j m_j·Σ a as for Q4_K (one per 16 here);
//   Q3_K: q −4..3, s −32..31, q·s in −124..128, stored as q·s + 127 (3..255, an unsigned byte)
//         and 127·Σ a taken off the int32 sum (the Q8_K block's sums of 16 give Σ a).
// Each byte comes from a 16-entry table per sub-block (u·s + offset for the code's unsigned form
// u, one byte shuffle): u = q for Q2_K, u = q + 4 (its low two bits and the high-mask bit as 4)
// for Q3_K. Then the reference's f32 steps as in Q45SuperBlock (Q3_K: dmin = 0, no minimums).
constexpr int kLowBitChunks = kQK_K / 64;
constexpr int kLowBitTileBytes = 16 * 64;  // 16 tile rows (64 codes / 4) × 16 rows × 4 codes

struct PreparedLowBitBlock {
  uint8_t tiles[kLowBitChunks][kLowBitTileBytes];  // B of columns 64c .. 64c + 63
  float d[16], dmin[16];
  int32_t min_pairs[kQK_K / 32][16];  // Q2_K: the minimums of sub-blocks 2i and 2i + 1 per row
};
static_assert(sizeof(PreparedLowBitBlock) == kLowBitChunks * kLowBitTileBytes + 2 * 16 * 4 + kQK_K / 32 * 16 * 4,
              "one prepared Q2_K/Q3_K super-block");
static_assert(sizeof(PreparedLowBitBlock) <= 16 * kQK_K * sizeof(float), "fits PromptGemmScratchFloats per 256 columns");

template <DType kType>
constexpr int kLowBitOffset = kType == DType::kQ3_K ? 127 : 0;

// Column 128·h + 32·j + l of Q2_K/Q3_K has its low two bits at bits 2j of qs[32h + l] (and Q3_K
// its high-mask bit at bit 4h + j of hmask[l]), so chunk c (columns 64c .. 64c + 63) is qs[32·(c/2)
// ..] read into both halves of a register and shifted by 4·(c % 2) and 4·(c % 2) + 2.
template <DType kType>
SMELT_AMX_INT8 void PrepareLowBitBlock(const uint8_t* w, size_t w_stride, int64_t n, int64_t b, PreparedLowBitBlock& p) {
  using Block = std::conditional_t<kType == DType::kQ2_K, BlockQ2_K, BlockQ3_K>;
  // The codes' unsigned forms u in table order, words u − 4 (Q3_K) or u (Q2_K) in every lane.
  const __m512i code_words = _mm512_sub_epi16(_mm512_set4_epi64(0x0007000600050004LL, 0x0003000200010000LL,
                                                                0x0007000600050004LL, 0x0003000200010000LL),
                                              _mm512_set1_epi16(kType == DType::kQ3_K ? 4 : 0));
  const __m512i offset = _mm512_set1_epi16(kLowBitOffset<kType>);
  const __m512i lane_index = _mm512_set_epi64(0x0003000300030003LL, 0x0003000300030003LL, 0x0002000200020002LL,
                                              0x0002000200020002LL, 0x0001000100010001LL, 0x0001000100010001LL, 0, 0);
  alignas(64) uint8_t products[kLowBitChunks][16][64];  // row r's bytes of chunk c: products[c][r]
  for (int r = 0; r < 16; ++r) {
    if (r >= n) {
      for (auto& chunk : products) std::memset(chunk[r], 0, 64);
      for (auto& pair : p.min_pairs) pair[r] = 0;
      p.d[r] = p.dmin[r] = 0.0f;
      continue;
    }
    const auto* blk = reinterpret_cast<const Block*>(w + r * w_stride) + b;
    p.d[r] = _cvtsh_ss(blk->d);
    __m256i scales;  // the 16 sub-blocks' scales as int16
    if constexpr (kType == DType::kQ2_K) {
      p.dmin[r] = _cvtsh_ss(blk->dmin);
      const __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->scales)));
      scales = _mm256_and_si256(bytes, _mm256_set1_epi16(0x0F));
      const __m256i mins = _mm256_srli_epi16(bytes, 4);  // (m_2i, m_2i+1) as one int32 each
      alignas(32) int32_t pairs[kQK_K / 32];
      _mm256_store_si256(reinterpret_cast<__m256i*>(pairs), mins);
      for (int i = 0; i < kQK_K / 32; ++i) p.min_pairs[i][r] = pairs[i];
    } else {
      p.dmin[r] = 0.0f;
      scales = kquant_row::Q3Scales(blk->scales);
      for (auto& pair : p.min_pairs) pair[r] = 0;
    }
    const __m512i wide_scales = _mm512_castsi256_si512(scales);
    for (int c = 0; c < kLowBitChunks; ++c) {
      const int s0 = 4 * (c % 2);
      const __m512i counts = _mm512_inserti64x4(_mm512_set1_epi16((short)s0), _mm256_set1_epi16((short)(s0 + 2)), 1);
      const __m512i qs = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs + 32 * (c / 2))));
      __m512i u = _mm512_and_si512(_mm512_srlv_epi16(qs, counts), _mm512_set1_epi8(3));
      if constexpr (kType == DType::kQ3_K) {
        const int h0 = 2 * c;  // bit of hmask for the chunk's first 32 columns
        const __m512i hcounts = _mm512_inserti64x4(_mm512_set1_epi16((short)h0), _mm256_set1_epi16((short)(h0 + 1)), 1);
        const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->hmask)));
        const __m512i high = _mm512_and_si512(_mm512_srlv_epi16(hm, hcounts), _mm512_set1_epi8(1));
        u = _mm512_or_si512(u, _mm512_slli_epi16(high, 2));
      }
      // Lane i of the chunk is sub-block 4c + i: its scale in all 8 words of the lane.
      const __m512i lane_scale =
          _mm512_permutexvar_epi16(_mm512_add_epi16(lane_index, _mm512_set1_epi16((short)(4 * c))), wide_scales);
      const __m512i table_words = _mm512_add_epi16(_mm512_mullo_epi16(code_words, lane_scale), offset);
      const __m512i table = _mm512_packus_epi16(table_words, table_words);  // bytes u·s (+ offset), twice per lane
      _mm512_store_si512(products[c][r], _mm512_shuffle_epi8(table, u));
    }
  }
  for (int c = 0; c < kLowBitChunks; ++c) {
    __m512i z[16];
    for (int r = 0; r < 16; ++r) z[r] = _mm512_load_si512(products[c][r]);
    StoreTransposed16(z, p.tiles[c]);
  }
}

// One super-block of Q2_K/Q3_K for nt tokens, as Q45SuperBlock: chunks 0 and 2 into C 0, 1 and 3
// into C 1.
template <DType kType>
SMELT_AMX_INT8 void LowBitSuperBlock(const PreparedLowBitBlock& p, const uint8_t* y0, size_t a_stride, int nt,
                                     __m512* acc) {
  alignas(64) int32_t sums[2][16][16];
  const uint8_t* codes = y0 + offsetof(BlockQ8_K, qs);
  const long stride = (long)a_stride;
  _tile_zero(0);
  _tile_zero(1);
  _tile_loadd(4, codes, stride);
  _tile_loadd(6, p.tiles[0], 64);
  _tile_dpbsud(0, 4, 6);
  _tile_loadd(5, codes + 64, stride);
  _tile_loadd(7, p.tiles[1], 64);
  _tile_dpbsud(1, 5, 7);
  _tile_loadd(4, codes + 128, stride);
  _tile_loadd(6, p.tiles[2], 64);
  _tile_dpbsud(0, 4, 6);
  _tile_loadd(5, codes + 192, stride);
  _tile_loadd(7, p.tiles[3], 64);
  _tile_dpbsud(1, 5, 7);
  _tile_stored(0, sums[0], 64);
  _tile_stored(1, sums[1], 64);
  TileMemoryBarrier();
  const __m512 d = _mm512_loadu_ps(p.d), dmin = _mm512_loadu_ps(p.dmin);
  for (int t = 0; t < nt; ++t) {
    const auto* y = reinterpret_cast<const BlockQ8_K*>(y0 + t * a_stride);
    __m512i codes_sum = _mm512_add_epi32(_mm512_load_si512(sums[0][t]), _mm512_load_si512(sums[1][t]));
    __m512i mins_sum = _mm512_setzero_si512();
    if constexpr (kType == DType::kQ2_K) {
      int32_t pairs[kQK_K / 32];  // the Q8_K sums of 16, two per int32
      std::memcpy(pairs, y->bsums, sizeof pairs);
      for (int i = 0; i < kQK_K / 32; ++i)
        mins_sum = _mm512_dpwssd_epi32(mins_sum, _mm512_set1_epi32(pairs[i]), _mm512_loadu_si512(p.min_pairs[i]));
    } else {
      int32_t total = 0;
      for (int16_t s : y->bsums) total += s;
      codes_sum = _mm512_sub_epi32(codes_sum, _mm512_set1_epi32(kLowBitOffset<kType> * total));
    }
    acc[t] = AddSuperBlockTerms(acc[t], y->d, d, dmin, codes_sum, mins_sum);
  }
}

}  // namespace

PromptGemm AmxKQuantGemm(DType type) {
  if (!CpuHasAmxInt8()) return {};
  switch (type) {
    case DType::kQ4_K:
      return {KGemm<PreparedSuperBlock, PrepareSuperBlock<DType::kQ4_K>, Q45SuperBlock, ConfigureQ45Tiles>, nullptr};
    case DType::kQ5_K:
      return {KGemm<PreparedSuperBlock, PrepareSuperBlock<DType::kQ5_K>, Q45SuperBlock, ConfigureQ45Tiles>, nullptr};
    case DType::kQ6_K: return {KGemm<PreparedQ6Block, PrepareQ6Block, Q6SuperBlock, ConfigureKTilesOf<16>>, nullptr};
    case DType::kQ2_K:
      return {KGemm<PreparedLowBitBlock, PrepareLowBitBlock<DType::kQ2_K>, LowBitSuperBlock<DType::kQ2_K>, ConfigureKTilesOf<64>>, nullptr};
    case DType::kQ3_K:
      return {KGemm<PreparedLowBitBlock, PrepareLowBitBlock<DType::kQ3_K>, LowBitSuperBlock<DType::kQ3_K>, ConfigureKTilesOf<64>>, nullptr};
    default: return {};
  }
}

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
PromptGemm AmxKQuantGemm(DType) { return {}; }
}  // namespace smelt

#endif

#undef SMELT_AMX_INT8
