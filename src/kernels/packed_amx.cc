// The AMX twin of PackedGemmReference (kernels/packed.h), for prompts and batches: 16 tokens of
// one packed panel, or of two adjacent panels (16 rows), at a time through Intel's tile unit. Per
// block of 32 columns:
//   A        = the 16 tokens' 32 activation codes, loaded straight from the encoded Q8_0 rows
//              (one tile row per token, the row stride as the tile stride);
//   B        = the panels' block codes as signed bytes in VNNI order: tile row j holds codes
//              4j .. 4j+3 of each of the 8 (16) rows, which is exactly a packed Q8_0 block's chunk
//              j (one panel: loaded in place) and what Q4_0 (q_w − 8), IQ4_NL (table[q_w]), Q5_0
//              (q_w − 16), Q4_1 and Q5_1 (q_w) unpack to; two panels sit side by side in a 64-byte
//              tile row;
//   C        = tdpbssd of the two: token t's 8 (16) exact row sums in tile row t.
// C goes to a small buffer, and each token's sums take the reference's f32 steps in the
// reference's order (acc = fma(d_w·d_a, (float) sum, acc), then for Q4_1/Q5_1, whose A rows are
// Q8_1 blocks, acc = fma(m_w, s_a, acc); blocks in column order), so the results
// are the same bits as PackedGemmReference's and the other twins'. A last partial tile of
// kMinTileTokens or more tokens runs as a shorter tile; fewer go to a VNNI twin (the same bits).
// 2 to 8 tokens in all (a few sequences decoded together) take two blocks per tile product
// instead (PairTileTokens), on rows laid out once per product as block pairs.
// NF4's codes index its fixed-point levels 256·h + l (formats/nf4.h), which do not fit a byte: each
// block takes two tile products, B holding the h bytes, then the l bytes, and its sum is
// 256·C_h + C_l before the f32 steps, two blocks in flight; the result is scaled by 2^-14 at the
// end (PackedResultScale). It takes block pairs from 3 tokens on (two pairs in flight), and
// 512-bit VNNI for 1 or 2 (faster there: 4096² product, 2 tokens 0.74 against 0.84 ms).
//
// Only these functions carry the target attribute; dispatch: CpuHasAmxInt8() in packed.cc (which
// also asks the kernel for the tile state).
#include "kernels/packed.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "kernels/bits_avx2.h"

#include "core/gcc_avx512_warnings_off.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "formats/iq4_nl.h"
#include "formats/nf4.h"
#include "formats/q8_0.h"
#include "kernels/amx_tiles.h"
#include "kernels/prefetch.h"

#define SMELT_AMX __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")))

namespace smelt {
namespace {

namespace amx {  // its own copy of the nibble unpacking (unity builds put the AVX2 twin's beside it)
#define SMELT_PACKED_TARGET SMELT_AMX
#include "kernels/packed_nibbles_body.h"
#undef SMELT_PACKED_TARGET
}  // namespace amx

constexpr int kTileTokens = 16;
// From this many tokens a partial tile beats the VNNI twin (220M, 1 thread: 8 sequences decoded
// together, Q8_0 272 -> 320 t/s; at 4 the VNNI twin was faster, Q4_0 320 against 228 t/s).
constexpr int kMinTileTokens = 8;
constexpr int kCodeBytes = 32;  // one block's codes: a tile row of A, and 8 rows × 4 codes per row of B

// The tiles' shapes for nt tokens and 1 or 2 panels (8 or 16 rows): C tiles 0..3 (nt tokens × the
// rows' int32), A tiles 4 and 6 (nt tokens × 32 codes), B tiles 5 and 7 (8 groups of 4 codes × the
// rows).
SMELT_AMX inline void ConfigureTiles(int nt, int panels) {
  TileConfig cfg;
  const uint16_t row_bytes = (uint16_t)(panels * kCodeBytes);  // 8 rows × 4 bytes per panel
  for (int c = 0; c < 4; ++c) cfg.rows[c] = (uint8_t)nt, cfg.colsb[c] = row_bytes;
  for (int ab : {4, 6}) {
    cfg.rows[ab] = (uint8_t)nt, cfg.colsb[ab] = kCodeBytes;
    cfg.rows[ab + 1] = 8, cfg.colsb[ab + 1] = row_bytes;
  }
  LoadTileConfig(cfg);
}

// Two panels' 8 fp16 values each (scales or minimums) as 16 floats, panel 0's first.
SMELT_AMX inline __m512 TwoPanelHalves(const fp16_t* lo, const fp16_t* hi) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo)))),
                            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hi))), 1);
}

// One packed block's codes as signed bytes in tile order, chunk j at dst + j·pitch (two panels
// side by side: pitch 64, the second panel at dst + 32).
// Q4_1 (nibbles), Q5_0 (nibble | fifth bit, − 16) and Q5_1 (nibble | fifth bit): the VNNI twins'
// unsigned codes (UnsignedCodes, packed_nibbles_body.h), Q5_0's made signed; every one fits a byte.
template <DType kType, class Packed>
SMELT_AMX inline void NibbleTypeCodes(const Packed& w, __m256i* c) {
  amx::UnsignedCodes(w, c);
  if constexpr (kType == DType::kQ5_0)
    for (int j = 0; j < 8; ++j) c[j] = _mm256_sub_epi8(c[j], _mm256_set1_epi8(16));
}
template <DType kType>
constexpr bool kNibbleType = kType == DType::kQ4_1 || kType == DType::kQ5_0 || kType == DType::kQ5_1;

// The codebook a nibble type's codes index, as signed bytes: IQ4_NL's, or byte kPlane (0: high, 1:
// low) of NF4's fixed-point levels (formats/nf4.h); nullptr for Q4_0 (the nibble − 8).
template <DType kType, int kPlane>
constexpr const int8_t* kNibbleTable = kType == DType::kIQ4_NL ? kIQ4NLValues
                                       : kType == DType::kNF4  ? (kPlane == 0 ? kNF4High : kNF4Low)
                                                               : nullptr;

// Two packed Q4_0-shaped blocks' nibbles side by side (w0's in bytes 0..31 of each register, w1's
// in 32..63), n[j] meeting activation bytes 4j .. 4j+3: chunk j's low nibbles for j < 4, chunk
// j − 4's high nibbles after.
SMELT_AMX inline __m512i Both(const void* lo, const void* hi) {  // 32 bytes at lo, then 32 at hi
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(lo))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(hi)), 1);
}
SMELT_AMX inline void NibblesTwoPanels(const BlockQ4_0x8& w0, const BlockQ4_0x8& w1, __m512i* n) {
  const __m512i mask = _mm512_set1_epi8(0x0F);
  for (int k = 0; k < 4; ++k) {
    const __m512i bytes = Both(w0.qs[k], w1.qs[k]);
    n[k] = _mm512_and_si512(bytes, mask);
    n[4 + k] = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), mask);
  }
}

// The bytes a Q4_0-shaped block's nibbles n[j] stand for, per plane (NF4 has two: its levels' high
// and low bytes; the others one): the codebook's entries (IQ4_NL, NF4; kNibbleTable) or the
// nibble − 8 (Q4_0) as signed bytes, or kUnsigned, the VNNI forms' unsigned codes: the entries
// + 128, or the nibble itself (kUnsignedOffset takes the offset off).
template <DType kType>
constexpr int kCodePlanes = kType == DType::kNF4 ? 2 : 1;
SMELT_AMX inline __m256i ShuffleBytes(__m256i t, __m256i x) { return _mm256_shuffle_epi8(t, x); }
SMELT_AMX inline __m512i ShuffleBytes(__m512i t, __m512i x) { return _mm512_shuffle_epi8(t, x); }
SMELT_AMX inline __m256i AddBytes(__m256i x, char v) { return _mm256_add_epi8(x, _mm256_set1_epi8(v)); }
SMELT_AMX inline __m512i AddBytes(__m512i x, char v) { return _mm512_add_epi8(x, _mm512_set1_epi8(v)); }
SMELT_AMX inline __m256i Codebook(const int8_t* table, char add, __m256i) { return amx::NibbleCodebook(table, add); }
SMELT_AMX inline __m512i Codebook(const int8_t* table, char add, __m512i) {  // the entries in all four 128-bit lanes
  return _mm512_add_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table))),
                         _mm512_set1_epi8(add));
}
template <DType kType, bool kUnsigned, class V>
SMELT_AMX inline void CodePlanes(const V* n, V (*planes)[8]) {
  for (int p = 0; p < kCodePlanes<kType>; ++p) {
    if constexpr (kNibbleTable<kType, 0> != nullptr) {
      // + 128 mod 256 for unsigned codes: every entry lies in -128..127
      const V book = Codebook(p == 0 ? kNibbleTable<kType, 0> : kNibbleTable<kType, 1>, kUnsigned ? (char)0x80 : 0, V{});
      for (int j = 0; j < 8; ++j) planes[p][j] = ShuffleBytes(book, n[j]);
    } else {
      for (int j = 0; j < 8; ++j) planes[p][j] = kUnsigned ? n[j] : AddBytes(n[j], -8);
    }
  }
}

// One packed block's codes as signed bytes in tile order, plane p's chunk j at dst[p] + j·pitch
// (NF4: two planes, its levels' high then low bytes; every other type one).
template <DType kType, class Packed>
SMELT_AMX inline void WriteSignedCodes(const Packed& w, int8_t* const* dst, int pitch) {
  if constexpr (kNibbleType<kType>) {
    __m256i c[8];
    NibbleTypeCodes<kType>(w, c);
    for (int j = 0; j < 8; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[0] + j * pitch), c[j]);
  } else if constexpr (kType == DType::kQ8_0) {
    for (int j = 0; j < 8; ++j)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[0] + j * pitch),
                          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs[j])));
  } else {
    __m256i n[8], c[kCodePlanes<kType>][8];
    amx::UnsignedCodes(w, n);
    CodePlanes<kType, false>(n, c);
    for (int p = 0; p < kCodePlanes<kType>; ++p)
      for (int j = 0; j < 8; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[p] + j * pitch), c[p][j]);
  }
}

// Two panels' block codes side by side (pitch 64: panel 0 in bytes 0..31 of each tile row, panel 1
// in 32..63), 64 bytes per step: WriteSignedCodes's bytes for both panels, plane p at dst[p].
template <DType kType, class Packed>
SMELT_AMX inline void WriteSignedCodesTwoPanels(const Packed& w0, const Packed& w1, int8_t* const* dst) {
  if constexpr (kNibbleType<kType>) {
    __m256i c0[8], c1[8];
    NibbleTypeCodes<kType>(w0, c0);
    NibbleTypeCodes<kType>(w1, c1);
    for (int j = 0; j < 8; ++j)
      _mm512_storeu_si512(dst[0] + 64 * j, _mm512_inserti64x4(_mm512_castsi256_si512(c0[j]), c1[j], 1));
  } else if constexpr (kType == DType::kQ8_0) {
    for (int j = 0; j < 8; ++j) _mm512_storeu_si512(dst[0] + 64 * j, Both(w0.qs[j], w1.qs[j]));
  } else {
    __m512i n[8], c[kCodePlanes<kType>][8];
    NibblesTwoPanels(w0, w1, n);
    CodePlanes<kType, false>(n, c);
    for (int p = 0; p < kCodePlanes<kType>; ++p)
      for (int k = 0; k < 4; ++k) {
        _mm512_storeu_si512(dst[p] + 64 * k, c[p][k]);
        _mm512_storeu_si512(dst[p] + 64 * (4 + k), c[p][4 + k]);
      }
  }
}

// The tile products of one group in flight, `count` (1..4) of them: product k into C tile k, its
// B tile (5 or 7, alternating) loaded from b[k]; the A tile of block k / kPlanes (4 or 6,
// alternating by block) loaded from a[k / kPlanes] with that block's first product, so NF4's two
// planes share it. The tile numbers are part of the instructions, so each product is spelled out.
template <int kPlanes>
SMELT_AMX inline void GroupProducts(const void* const* a, long a_stride, const int8_t* const* b, long b_stride, int count) {
  static_assert(kPlanes == 1 || kPlanes == 2);
  // Product K: C tile K, B tile B, A tile A1 (one plane) or A2 (two planes): literal tile numbers.
#define SMELT_GROUP_PRODUCT(K, A1, A2, B)                                   \
  if (count > (K)) {                                                        \
    _tile_zero(K);                                                          \
    if constexpr (kPlanes == 1) {                                           \
      _tile_loadd(A1, a[K], a_stride);                                      \
      _tile_loadd(B, b[K], b_stride);                                       \
      _tile_dpbssd(K, A1, B);                                               \
    } else {                                                                \
      if constexpr ((K) % 2 == 0) _tile_loadd(A2, a[(K) / 2], a_stride);    \
      _tile_loadd(B, b[K], b_stride);                                       \
      _tile_dpbssd(K, A2, B);                                               \
    }                                                                       \
  }
  SMELT_GROUP_PRODUCT(0, 4, 4, 5)
  SMELT_GROUP_PRODUCT(1, 6, 4, 7)
  SMELT_GROUP_PRODUCT(2, 4, 6, 5)
  SMELT_GROUP_PRODUCT(3, 6, 6, 7)
#undef SMELT_GROUP_PRODUCT
}

// C tiles 0 .. count − 1 into sums[0 .. count − 1] (rows `stride` bytes apart).
template <class Sums>
SMELT_AMX inline void StoreGroupSums(Sums& sums, int count, long stride) {
  _tile_stored(0, sums[0], stride);
  if (count > 1) _tile_stored(1, sums[1], stride);
  if (count > 2) _tile_stored(2, sums[2], stride);
  if (count > 3) _tile_stored(3, sums[3], stride);
}

// Tokens t0 .. t0+nt-1 (nt ≤ 16, the rows of the A and C tiles in the configuration loaded by
// ConfigureTiles(nt, kPanels)) against whole panels (kPanels of them, their 8·kPanels rows side by
// side). Up to four blocks are in flight at once (C tiles 0..3, the A and B tiles alternating), so
// the tile unit's latency overlaps; then their sums take the f32 steps block by block, in column
// order, 512 bits at a time: one token's 16 rows, or (one panel) two tokens' 8.
// kNt: the token count when known at compile time (then the per-token steps unroll and the
// accumulators stay in registers), 0 when nt says it.
// a_scales: where not null (two panels, Q8_0 or Q8_1 rows), ActivationBlockScales of all T rows,
// which the f32 steps broadcast per token (d, and Q8_1's s) instead of gathering them from the rows.
template <class Packed, DType kType, int kPanels, int kNt = 0>
SMELT_AMX void TileTokens(const Packed* const* panels, int64_t nb, const uint8_t* a, size_t a_stride,
                          const float* a_scales, int64_t T, int64_t t0, int nt_arg, float* y, int64_t y_stride) {
  const int nt = kNt ? kNt : nt_arg;
  const bool spread = kPanels == 2 && a_scales != nullptr;  // one token per register
  // NF4: each code's fixed-point level 256·h + l as two planes of signed bytes, one tile product
  // each (C tiles 2i and 2i + 1 of block i), the block's sum 256·C_h + C_l: two blocks in flight.
  constexpr int kPlanes = kCodePlanes<kType>;
  constexpr int kInFlight = 4 / kPlanes, kPitch = kPanels * kCodeBytes;
  constexpr int kRows = 8 * kPanels, kPerReg = 16 / kRows;  // rows per token; tokens per register
  alignas(64) int8_t codes[kInFlight][kPlanes][8 * kPitch];
  // The tile stores write nt rows; with two tokens per register (one panel) an odd nt reads one
  // row more, which stays 0. With one token per register only written rows are read.
  alignas(64) int32_t sums[4][kTileTokens][kRows];  // C tile c's sums
  if constexpr (kPerReg > 1) std::memset(sums, 0, sizeof sums);
  __m512 acc[kTileTokens / kPerReg];
  for (__m512& v : acc) v = _mm512_setzero_ps();
  const uint8_t* rows = a + t0 * a_stride;
  const long stride = (long)a_stride;
  // Byte offsets of the 16 tokens' rows, to gather their blocks' fp16 scales in one instruction.
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i token_offsets = _mm512_mullo_epi32(lanes, _mm512_set1_epi32((int32_t)a_stride));
  const __m512i lane_token = _mm512_srli_epi32(lanes, kPanels == 1 ? 3 : 4);  // lane → token in its register
  const __m512i low_half = _mm512_set1_epi32(0xFFFF);
  const __mmask16 tokens = (__mmask16)((1u << nt) - 1);  // the gather reads only real rows
  using Act = PackedActivation<Packed>;  // Q8_1 rows for the types with a minimum
  constexpr size_t kQs = offsetof(Act, qs);
  for (int64_t b0 = 0; b0 < nb; b0 += kInFlight) {
    const int n = (int)std::min<int64_t>(kInFlight, nb - b0);
    const uint8_t* act[kInFlight];
    const void* act_codes[kInFlight];               // block i's A
    const int8_t* tile_codes[kInFlight * kPlanes];  // product k's B: block k / kPlanes, plane k % kPlanes
    for (int i = 0; i < n; ++i) {
      act[i] = rows + (b0 + i) * sizeof(Act);
      act_codes[i] = act[i] + kQs;
      for (int p = 0; p < kPanels; ++p) PrefetchAhead<sizeof(Packed)>(panels[p] + b0 + i, PanelPrefetchDistance<Packed>());
      if constexpr (kPanels == 1 && kType == DType::kQ8_0) {
        tile_codes[i] = &panels[0][b0 + i].qs[0][0];  // already in tile order
        continue;
      } else if constexpr (kPanels == 2) {
        int8_t* const dst[2] = {codes[i][0], codes[i][kPlanes - 1]};
        WriteSignedCodesTwoPanels<kType>(panels[0][b0 + i], panels[1][b0 + i], dst);
      } else {
        for (int p = 0; p < kPanels; ++p) {
          int8_t* const dst[2] = {codes[i][0] + p * kCodeBytes, codes[i][kPlanes - 1] + p * kCodeBytes};
          WriteSignedCodes<kType>(panels[p][b0 + i], dst, kPitch);
        }
      }
      for (int p = 0; p < kPlanes; ++p) tile_codes[kPlanes * i + p] = codes[i][p];
    }
    TileMemoryBarrier();
    GroupProducts<kPlanes>(act_codes, stride, tile_codes, kPitch, n * kPlanes);
    StoreGroupSums(sums, n * kPlanes, kRows * sizeof(int32_t));
    for (int i = 0; i < n; ++i) {
      // d_w of the rows in every token's lanes; d_a of the 16 tokens (the fp16 scale opens each block).
      const __m512 d_w = TwoPanelHalves(panels[0][b0 + i].d, panels[kPanels - 1][b0 + i].d);
      // Each token's block opens with d (and for Q8_1 s): one gather of the first four bytes, or
      // the scales given, broadcast below.
      __m512i head = _mm512_setzero_si512();
      __m512 d_a = _mm512_setzero_ps();
      if (!spread) {
        head = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), tokens, token_offsets, act[i], 1);
        d_a = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_and_si512(head, low_half)));
      }
      const float* block_scales = spread ? a_scales + (b0 + i) * T + t0 : nullptr;
      // Q8_1 rows: each block's s after all the blocks' d (ActivationBlockScales).
      const float* block_mins = spread && kPackedHasMin<Packed> ? a_scales + (nb + b0 + i) * T + t0 : nullptr;
      __m512 m_w = _mm512_setzero_ps(), s_a = _mm512_setzero_ps();
      if constexpr (kPackedHasMin<Packed>) {
        m_w = TwoPanelHalves(panels[0][b0 + i].m, panels[kPanels - 1][b0 + i].m);
        s_a = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(head, 16)));
      }
      for (int g = 0; g * kPerReg < nt; ++g) {
        const __m512i pick = _mm512_add_epi32(_mm512_set1_epi32(g * kPerReg), lane_token);
        const __m512 d = spread ? _mm512_mul_ps(d_w, _mm512_set1_ps(block_scales[g]))
                              : _mm512_mul_ps(d_w, _mm512_permutexvar_ps(pick, d_a));
        __m512i s = _mm512_load_si512(sums[kPlanes * i][g * kPerReg]);
        if constexpr (kPlanes == 2) s = _mm512_add_epi32(_mm512_slli_epi32(s, 8), _mm512_load_si512(sums[2 * i + 1][g * kPerReg]));
        acc[g] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc[g]);
        if constexpr (kPackedHasMin<Packed>)
          acc[g] = _mm512_fmadd_ps(m_w, spread ? _mm512_set1_ps(block_mins[g]) : _mm512_permutexvar_ps(pick, s_a), acc[g]);
      }
    }
  }
  for (int g = 0; g * kPerReg < nt; ++g) {
    if constexpr (PackedResultScale(kType) != 1.0f) acc[g] = _mm512_mul_ps(acc[g], _mm512_set1_ps(PackedResultScale(kType)));
    if constexpr (kPanels == 2) {
      _mm512_storeu_ps(y + (t0 + g) * y_stride, acc[g]);
    } else {
      _mm256_storeu_ps(y + (t0 + 2 * g) * y_stride, _mm512_castps512_ps256(acc[g]));
      if (2 * g + 1 < nt) _mm256_storeu_ps(y + (t0 + 2 * g + 1) * y_stride, _mm512_extractf32x8_ps(acc[g], 1));
    }
  }
}

// The tiles of PairTileTokens: C (0..3) and A (4, 6) 2·nt rows × 64 bytes, B (5, 7) 16 rows × 64
// bytes (two blocks' 8 chunks of 4 codes for the 16 rows).
SMELT_AMX inline void ConfigurePairTiles(int nt) {
  TileConfig cfg;
  for (int c = 0; c < 8; ++c) cfg.rows[c] = (uint8_t)(c == 5 || c == 7 ? 16 : 2 * nt), cfg.colsb[c] = 64;
  LoadTileConfig(cfg);
}

// kNt tokens (the product's rows, kMinPairTokens..kPairTokens) against two panels, two blocks per
// tile product: A = the pair's rows of ActivationBlockPairs (token t's
// codes of block 2j + h in row h·kNt + t, the other half zero), B = WriteSignedCodesTwoPanels of
// blocks 2j and 2j + 1 one after the other (64 deep), so C row h·kNt + t holds token t's 16 row
// sums of block 2j + h. Then TileTokens's f32 steps, block by block in column order with the
// broadcast scales (Q4_1, Q5_1: then fma(m_w, s_a), s_a from the scales given for Q8_1 rows): the
// same bits. NF4: each pair's two planes through B tiles 5 and 7 into C
// tiles 2i and 2i + 1, the sums 256·C_h + C_l, two pairs in flight.
template <class Packed, DType kType, int kNt>
SMELT_AMX void PairTileTokens(const Packed* const* panels, int64_t nb, const int8_t* pairs, const float* a_scales,
                              float* y, int64_t y_stride) {
  constexpr int kPlanes = kCodePlanes<kType>, kInFlight = 4 / kPlanes, kPairBytes = 2 * kNt * 64;
  // Q8_0's codes are copies only: it writes the next group's while the tile unit works on this
  // one, so its tile loads never wait on lines just stored (6 tokens 1.07-1.10 → 0.96-0.98 ms,
  // 2 tokens 0.75 → 0.71; the nibble types, with work to do per byte, were 2-4 % slower so).
  constexpr bool kAhead = kType == DType::kQ8_0;
  using Group = int8_t[kInFlight][kPlanes][2 * 8 * 64];
  alignas(64) Group codes[kAhead ? 2 : 1];
  alignas(64) int32_t sums[4][2 * kNt][16];
  __m512 acc[kNt];
  for (__m512& v : acc) v = _mm512_setzero_ps();
  const int64_t np = (nb + 1) / 2;
  auto unpack = [&](int64_t j0, Group& out) {
    const int n = (int)std::min<int64_t>(kInFlight, np - j0);
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < 2; ++h) {
        const int64_t b = 2 * (j0 + i) + h;
        if (b == nb) {  // the last pair's missing block: its codes meet zero activations (zeroed: no stale bytes)
          for (int p = 0; p < kPlanes; ++p) std::memset(out[i][p] + 512, 0, 512);
          break;
        }
        for (int p = 0; p < 2; ++p) PrefetchAhead<sizeof(Packed)>(panels[p] + b, PanelPrefetchDistance<Packed>());
        int8_t* const dst[2] = {out[i][0] + 512 * h, out[i][kPlanes - 1] + 512 * h};
        WriteSignedCodesTwoPanels<kType>(panels[0][b], panels[1][b], dst);
      }
  };
  if constexpr (kAhead) unpack(0, codes[0]);
  for (int64_t j0 = 0, g = 0; j0 < np; j0 += kInFlight, g = kAhead ? 1 - g : 0) {
    const int n = (int)std::min<int64_t>(kInFlight, np - j0);
    if constexpr (!kAhead) unpack(j0, codes[0]);
    Group& c = codes[g];
    TileMemoryBarrier();
    const void* a[kInFlight];
    const int8_t* b[kInFlight * kPlanes];  // product k's B: pair k / kPlanes, plane k % kPlanes
    for (int i = 0; i < n; ++i) {
      a[i] = pairs + (j0 + i) * kPairBytes;
      for (int p = 0; p < kPlanes; ++p) b[kPlanes * i + p] = c[i][p];
    }
    GroupProducts<kPlanes>(a, 64, b, 64, n * kPlanes);
    if constexpr (kAhead) {
      if (j0 + kInFlight < np) unpack(j0 + kInFlight, codes[1 - g]);
      TileMemoryBarrier();
    }
    StoreGroupSums(sums, n * kPlanes, 64);
    for (int i = 0; i < n; ++i)
      for (int h = 0; h < 2; ++h) {
        const int64_t b = 2 * (j0 + i) + h;
        if (b == nb) break;
        const __m512 d_w = TwoPanelHalves(panels[0][b].d, panels[1][b].d);
        const float* block_scales = a_scales + b * kNt;
        __m512 m_w = _mm512_setzero_ps();
        if constexpr (kPackedHasMin<Packed>) m_w = TwoPanelHalves(panels[0][b].m, panels[1][b].m);
        for (int t = 0; t < kNt; ++t) {
          const __m512 d = _mm512_mul_ps(d_w, _mm512_set1_ps(block_scales[t]));
          __m512i s = _mm512_load_si512(sums[kPlanes * i][h * kNt + t]);
          if constexpr (kPlanes == 2) s = _mm512_add_epi32(_mm512_slli_epi32(s, 8), _mm512_load_si512(sums[2 * i + 1][h * kNt + t]));
          acc[t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc[t]);
          if constexpr (kPackedHasMin<Packed>)  // Q8_1 rows: s_a = d_a·Σq_a, after the block's d_a
            acc[t] = _mm512_fmadd_ps(m_w, _mm512_set1_ps(block_scales[nb * kNt + t]), acc[t]);
        }
      }
  }
  for (int t = 0; t < kNt; ++t) {
    if constexpr (PackedResultScale(kType) != 1.0f) acc[t] = _mm512_mul_ps(acc[t], _mm512_set1_ps(PackedResultScale(kType)));
    _mm512_storeu_ps(y + t * y_stride, acc[t]);
  }
}

// One to three tokens of two panels on 512-bit VNNI (decoding, small batches): a chunk's 16 rows'
// codes in one register, as unsigned bytes offset like the 256-bit VNNI twin (Q4_0: the stored
// nibble, Q8_0 and IQ4_NL + 128; Q4_1, Q5_0, Q5_1: that twin's own codes, packed_nibbles_body.h,
// Q5_0's offset by 16; NF4: its levels' high and low bytes + 128, two vpdpbusd per chunk), one
// vpdpbusd per chunk for 16 rows, then the reference's f32 steps per row (and for Q4_1 and Q5_1
// acc = fma(m_w, s_a, acc) after each block). The same bits as the reference.

template <DType kType, class Packed>
SMELT_AMX inline void UnsignedCodesTwoPanels(const Packed& w0, const Packed& w1, __m512i (*c)[8]) {
  if constexpr (kNibbleType<kType>) {
    __m256i c0[8], c1[8];
    amx::UnsignedCodes(w0, c0);
    amx::UnsignedCodes(w1, c1);
    for (int j = 0; j < 8; ++j) c[0][j] = _mm512_inserti64x4(_mm512_castsi256_si512(c0[j]), c1[j], 1);
  } else if constexpr (kType == DType::kQ8_0) {
    for (int j = 0; j < 8; ++j) c[0][j] = _mm512_xor_si512(Both(w0.qs[j], w1.qs[j]), _mm512_set1_epi8((char)0x80));
  } else {
    __m512i n[8];
    NibblesTwoPanels(w0, w1, n);
    CodePlanes<kType, true>(n, c);
  }
}

// The offset of UnsignedCodesTwoPanels's codes, taken off through the activation block's code sum.
// (NF4: its two bytes' sums as 256·high + low, each byte + 128.)
template <DType kType>
constexpr int32_t kUnsignedOffset = kType == DType::kQ4_0   ? 8
                                    : kType == DType::kQ5_0 ? 16
                                    : kType == DType::kNF4  ? 257 * 128
                                    : kNibbleType<kType>    ? 0  // Q4_1, Q5_1: the minimum term instead
                                                            : 128;

template <class Packed, DType kType>
SMELT_AMX void VnniTokenTwoPanels(const Packed* p0, const Packed* p1, int64_t nb, const uint8_t* a,
                                  const int32_t* a_sums, float* y) {
  using Act = PackedActivation<Packed>;
  constexpr int32_t kOffset = kUnsignedOffset<kType>;
  __m512 acc = _mm512_setzero_ps();
  // Each panel's lines are asked for where the next call (the next two panels, as the row loops
  // go) will read: the same block of both its panels. On the Xeon, 1 thread, against
  // PanelPrefetchDistance: Q4_0 decode 189-193 -> 211-213 t/s, Q8_0 71-74 -> 73-75.
  const size_t ahead = 2 * nb * sizeof(Packed);
  for (int64_t b = 0; b < nb; ++b) {
    PrefetchAhead<sizeof(Packed)>(p0 + b, ahead);
    PrefetchAhead<sizeof(Packed)>(p1 + b, ahead);
    constexpr int kPlanes = kCodePlanes<kType>;
    __m512i c[kPlanes][8];
    UnsignedCodesTwoPanels<kType>(p0[b], p1[b], c);
    const Act& act = reinterpret_cast<const Act*>(a)[b];
    // Plane p's sums in s[p][0] + s[p][1] (two chains: the integer sums do not depend on the order).
    __m512i s[kPlanes][2];
    for (auto& plane : s) plane[0] = plane[1] = _mm512_setzero_si512();
    for (int j = 0; j < 8; j += 2) {
      int32_t v0, v1;
      std::memcpy(&v0, act.qs + 4 * j, sizeof v0);
      std::memcpy(&v1, act.qs + 4 * j + 4, sizeof v1);
      const __m512i x0 = _mm512_set1_epi32(v0), x1 = _mm512_set1_epi32(v1);
      for (int p = 0; p < kPlanes; ++p) {
        s[p][0] = _mm512_dpbusd_epi32(s[p][0], c[p][j], x0);
        s[p][1] = _mm512_dpbusd_epi32(s[p][1], c[p][j + 1], x1);
      }
    }
    __m512i sums = _mm512_add_epi32(s[0][0], s[0][1]);
    if constexpr (kPlanes == 2)  // NF4: 256·high + low
      sums = _mm512_add_epi32(_mm512_slli_epi32(sums, 8), _mm512_add_epi32(s[1][0], s[1][1]));
    if constexpr (kOffset != 0) sums = _mm512_sub_epi32(sums, _mm512_set1_epi32(kOffset * a_sums[b]));
    const __m512 d_w = TwoPanelHalves(p0[b].d, p1[b].d);
    acc = _mm512_fmadd_ps(_mm512_mul_ps(d_w, _mm512_set1_ps(_cvtsh_ss(act.d))), _mm512_cvtepi32_ps(sums), acc);
    if constexpr (kPackedHasMin<Packed>)
      acc = _mm512_fmadd_ps(TwoPanelHalves(p0[b].m, p1[b].m), _mm512_set1_ps(_cvtsh_ss(act.s)), acc);
  }
  if constexpr (PackedResultScale(kType) != 1.0f) acc = _mm512_mul_ps(acc, _mm512_set1_ps(PackedResultScale(kType)));
  _mm512_storeu_ps(y, acc);
}

// kPanels panels (their rows side by side in y) against T tokens. Two panels take 2 (NF4: 3) to 8
// tokens (the whole product) as block pairs where given
// (PairTileTokens). Otherwise whole tiles of 16 tokens, a shorter tile for the last 8 to 15, then
// the VNNI twins: for two panels, 512-bit VNNI for up to 3 tokens, the 256-bit twin per panel for
// 4 to 7 (measured faster there than tiles of one block: Q4_0 four sequences 385 against 330 t/s).
template <class Packed, DType kType, int kPanels>
SMELT_AMX void AmxGemmPanels(const Packed* const* panels, int64_t nb, const uint8_t* a, size_t a_stride,
                             const int32_t* a_sums, const TileActivations& tiles, int64_t T, float* y, int64_t y_stride) {
  const float* a_scales = tiles.scales;
  if constexpr (kPanels == 2) {
    // A few sequences decoded together, or a draft's tokens verified. Q8_0 (codes used as stored)
    // keeps its partial tile at 8 tokens and its 4-token VNNI twin at 4: faster there (4096²
    // product, 1 thread: 1.01 against 1.06 ms, 0.78 against 0.84), where the types with codes to
    // unpack gain at every count (Q4_0 at 2 tokens 0.72 → 0.55 ms, at 7 1.69 → 0.80, at 8 0.91 →
    // 0.82; Q8_0 at 3 1.54 → 0.84, at 6 1.30 → 1.11; NF4 at 3 1.14 → 0.87, at 6 2.1 → 1.1).
    const bool paired = kType == DType::kNF4 ? T > 2 : kType != DType::kQ8_0 || (T != 4 && T < kPairTokens);
    if (tiles.pairs && a_scales && T >= kMinPairTokens && T <= kPairTokens && paired) {
      ConfigurePairTiles((int)T);
      switch (T) {
        case 2: PairTileTokens<Packed, kType, 2>(panels, nb, tiles.pairs, a_scales, y, y_stride); break;
        case 3: PairTileTokens<Packed, kType, 3>(panels, nb, tiles.pairs, a_scales, y, y_stride); break;
        case 4: PairTileTokens<Packed, kType, 4>(panels, nb, tiles.pairs, a_scales, y, y_stride); break;
        case 5: PairTileTokens<Packed, kType, 5>(panels, nb, tiles.pairs, a_scales, y, y_stride); break;
        case 6: PairTileTokens<Packed, kType, 6>(panels, nb, tiles.pairs, a_scales, y, y_stride); break;
        case 7: PairTileTokens<Packed, kType, 7>(panels, nb, tiles.pairs, a_scales, y, y_stride); break;
        default: PairTileTokens<Packed, kType, 8>(panels, nb, tiles.pairs, a_scales, y, y_stride); break;
      }
      static_assert(kMinPairTokens == 2 && kPairTokens == 8, "one case per token count");
      _tile_release();
      return;
    }
  }
  int64_t t = 0;
  if (T >= kTileTokens) {
    ConfigureTiles(kTileTokens, kPanels);
    for (; t + kTileTokens <= T; t += kTileTokens)
      TileTokens<Packed, kType, kPanels, kTileTokens>(panels, nb, a, a_stride, a_scales, T, t, kTileTokens, y, y_stride);
    _tile_release();
  }
  if (T - t >= kMinTileTokens) {  // a partial tile
    ConfigureTiles((int)(T - t), kPanels);
    if (T - t == kMinTileTokens) {  // 8 sequences decoded together
      TileTokens<Packed, kType, kPanels, kMinTileTokens>(panels, nb, a, a_stride, a_scales, T, t, kMinTileTokens, y,
                                                         y_stride);
    } else {
      TileTokens<Packed, kType, kPanels>(panels, nb, a, a_stride, a_scales, T, t, (int)(T - t), y, y_stride);
    }
    _tile_release();
    t = T;
  }
  if constexpr (kPanels == 2) {
    if (T - t < 4) {
      for (; t < T; ++t)
        VnniTokenTwoPanels<Packed, kType>(panels[0], panels[1], nb, a + t * a_stride, a_sums ? a_sums + t * nb : nullptr,
                                          y + t * y_stride);
      return;
    }
  }
  if (t < T)
    for (int p = 0; p < kPanels; ++p)
      Avx512VnniPackedGemm(kType)(panels[p], nb, a + t * a_stride, a_stride, a_sums ? a_sums + t * nb : nullptr, T - t,
                                  y + t * y_stride + p * kPackRows, y_stride);
}

template <class Packed, DType kType>
SMELT_AMX void AmxGemm(const void* panel, int64_t nb, const uint8_t* a, size_t a_stride, const int32_t* a_sums,
                       int64_t T, float* y, int64_t y_stride) {
  const Packed* panels[1] = {static_cast<const Packed*>(panel)};
  AmxGemmPanels<Packed, kType, 1>(panels, nb, a, a_stride, a_sums, TileActivations{}, T, y, y_stride);
}

template <class Packed, DType kType>
SMELT_AMX void AmxGemmTwoPanels(const void* panel0, const void* panel1, int64_t nb, const uint8_t* a, size_t a_stride,
                                const int32_t* a_sums, const TileActivations& tiles, int64_t T, float* y,
                                int64_t y_stride) {
  const Packed* panels[2] = {static_cast<const Packed*>(panel0), static_cast<const Packed*>(panel1)};
  AmxGemmPanels<Packed, kType, 2>(panels, nb, a, a_stride, a_sums, tiles, T, y, y_stride);
}

}  // namespace

PackedGemm2Fn AmxPackedGemmTwoPanels(DType type) {
  switch (type) {
    case DType::kQ4_0: return AmxGemmTwoPanels<BlockQ4_0x8, DType::kQ4_0>;
    case DType::kIQ4_NL: return AmxGemmTwoPanels<BlockQ4_0x8, DType::kIQ4_NL>;
    case DType::kNF4: return AmxGemmTwoPanels<BlockQ4_0x8, DType::kNF4>;
    case DType::kQ8_0: return AmxGemmTwoPanels<BlockQ8_0x8, DType::kQ8_0>;
    case DType::kQ4_1: return AmxGemmTwoPanels<BlockQ4_1x8, DType::kQ4_1>;
    case DType::kQ5_0: return AmxGemmTwoPanels<BlockQ5_0x8, DType::kQ5_0>;
    case DType::kQ5_1: return AmxGemmTwoPanels<BlockQ5_1x8, DType::kQ5_1>;
    default: return nullptr;
  }
}

PackedGemmFn AmxPackedGemm(DType type) {
  switch (type) {
    case DType::kQ4_0: return AmxGemm<BlockQ4_0x8, DType::kQ4_0>;
    case DType::kIQ4_NL: return AmxGemm<BlockQ4_0x8, DType::kIQ4_NL>;
    case DType::kNF4: return AmxGemm<BlockQ4_0x8, DType::kNF4>;
    case DType::kQ8_0: return AmxGemm<BlockQ8_0x8, DType::kQ8_0>;
    case DType::kQ4_1: return AmxGemm<BlockQ4_1x8, DType::kQ4_1>;
    case DType::kQ5_0: return AmxGemm<BlockQ5_0x8, DType::kQ5_0>;
    case DType::kQ5_1: return AmxGemm<BlockQ5_1x8, DType::kQ5_1>;
    default: return nullptr;
  }
}

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
PackedGemmFn AmxPackedGemm(DType) { return nullptr; }
PackedGemm2Fn AmxPackedGemmTwoPanels(DType) { return nullptr; }
}  // namespace smelt

#endif

#undef SMELT_AMX
