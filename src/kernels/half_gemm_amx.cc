// The AMX-BF16 twin of kernels/half_gemm.h. A half is split exactly into two bf16: hi = the value
// rounded to bf16, lo = the value − hi (a half has 11 significant bits, so the rest has at most 3
// and is exact; a bf16 is its own hi, lo = 0). Every product of two halves is then the sum of the
// four bf16 products hi·hi + lo·hi + hi·lo + lo·lo, each exact in f32, which the tile unit adds in
// f32 (tdpbf16ps). For one block of 32 columns:
//   A = 16 weight rows' 32 hi (or lo) values, loaded from the block's rows split into scratch;
//   B = 16 tokens' 32 hi (or lo) values in the tile unit's pair order: tile row j holds values
//       2j, 2j+1 of each token (PromptTokens, written once per product by SplitTokens);
//   C = the 16 rows × 16 tokens' sums, transposed to the caller's token-major rows at the end.
// Four groups of 16 tokens are in flight (C tiles 0..3), so the tile unit's latency overlaps.
// Rows past n, tokens past T and columns past C are zeros in the split copies, so every tile is
// whole. Only these functions carry the target attribute; dispatch: CpuHasAmxBf16() (which also
// asks the kernel for the tile state).
#include "kernels/half_gemm.h"

#include "core/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "core/gcc_avx512_warnings_off.h"

#include <algorithm>
#include <cstring>

#include "kernels/amx_tiles.h"
#include "kernels/transpose_avx512.h"

#define SMELT_AMX_BF16 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16")))

namespace smelt {
namespace {

constexpr int kTileBytes = 1024;  // 16 rows × 64 bytes
constexpr int kGroups = 4;        // groups of 16 tokens in flight

// 32 halves (fewer at the end of a row: zeros) as hi and lo bf16, 16 pairs in each register.
template <DType kType>
SMELT_AMX_BF16 inline void Split32(const uint8_t* p, int64_t left, __m512i& hi, __m512i& lo) {
  const __mmask32 m = left >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << left) - 1);
  const __m512i v = _mm512_maskz_loadu_epi16(m, p);
  if constexpr (kType == DType::kBF16) {
    hi = v;
    lo = _mm512_setzero_si512();
  } else {
    const __m512 x0 = _mm512_cvtph_ps(_mm512_castsi512_si256(v));
    const __m512 x1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
    hi = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);  // values 0..15 from x0, 16..31 from x1
    const __m512 h0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(hi)), 16));
    const __m512 h1 =
        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(hi, 1)), 16));
    lo = (__m512i)_mm512_cvtne2ps_pbh(_mm512_sub_ps(x1, h1), _mm512_sub_ps(x0, h0));
  }
}

constexpr int Parts(DType type) { return type == DType::kF16 ? 2 : 1; }  // hi and lo, or hi alone

// PromptTokensFn: per group of 16 tokens, per block of 32 columns, the hi tile then (F16) the lo
// tile in B's pair order. Returns the bytes of one group.
template <DType kType>
SMELT_AMX_BF16 size_t SplitTokens(const uint8_t* a, size_t a_stride, int64_t T, int64_t C, uint8_t* dst) {
  const int64_t blocks = PromptPaddedColumns(C) / 32, groups = PromptPaddedTokens(T) / 16;
  const size_t group_bytes = (size_t)blocks * Parts(kType) * kTileBytes;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t s = 0; s < blocks; ++s) {
      __m512i hi[16], lo[16];
      for (int n = 0; n < 16; ++n) {
        const int64_t t = g * 16 + n;
        if (t < T) {
          Split32<kType>(a + t * a_stride + 64 * s, C - 32 * s, hi[n], lo[n]);
        } else {
          hi[n] = lo[n] = _mm512_setzero_si512();
        }
      }
      uint8_t* tile = dst + g * group_bytes + s * Parts(kType) * kTileBytes;
      StoreTransposed16(hi, tile);
      if constexpr (kType == DType::kF16) StoreTransposed16(lo, tile + kTileBytes);
    }
  return group_bytes;
}

// One group's step: tile B (6 or 7) := its hi or lo tile, then C += A_hi · B and (F16) C += A_lo · B.
#define SMELT_HALF_STEP(C, B, src)                \
  do {                                            \
    _tile_loadd(B, src, 64);                      \
    _tile_dpbf16ps(C, 4, B);                      \
    if constexpr (kParts == 2) _tile_dpbf16ps(C, 5, B); \
  } while (0)

template <DType kType>
SMELT_AMX_BF16 void AmxHalfGemmImpl(const uint8_t* w, size_t w_stride, int64_t n, const uint8_t* a, size_t a_stride,
                                    int64_t T, int64_t C, float* out, int64_t ld, float* scratch) {
  constexpr int kParts = Parts(kType);
  const int64_t Cp = PromptPaddedColumns(C), blocks = Cp / 32, groups = PromptPaddedTokens(T) / 16;
  // The rows split: hi rows (16 × Cp bf16), then lo rows.
  auto* w_hi = reinterpret_cast<uint8_t*>(scratch);
  uint8_t* w_lo = w_hi + 16 * Cp * 2;
  for (int64_t r = 0; r < 16; ++r)
    for (int64_t s = 0; s < blocks; ++s) {
      __m512i hi = _mm512_setzero_si512(), lo = _mm512_setzero_si512();
      if (r < n) Split32<kType>(w + r * w_stride + 64 * s, C - 32 * s, hi, lo);
      _mm512_storeu_si512(w_hi + (r * Cp + 32 * s) * 2, hi);
      if constexpr (kParts == 2) _mm512_storeu_si512(w_lo + (r * Cp + 32 * s) * 2, lo);
    }
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) cfg.rows[i] = 16, cfg.colsb[i] = 64;
  LoadTileConfig(cfg);
  TileMemoryBarrier();
  const long row_stride = (long)(Cp * 2);
  alignas(64) float sums[16][16];
  for (int64_t g0 = 0; g0 < groups; g0 += kGroups) {
    const int ng = (int)std::min<int64_t>(kGroups, groups - g0);
    _tile_zero(0);
    if (ng > 1) _tile_zero(1);
    if (ng > 2) _tile_zero(2);
    if (ng > 3) _tile_zero(3);
    const uint8_t* b = a + g0 * a_stride;
    for (int64_t s = 0; s < blocks; ++s) {
      _tile_loadd(4, w_hi + s * 64, row_stride);
      if constexpr (kParts == 2) _tile_loadd(5, w_lo + s * 64, row_stride);
      for (int part = 0; part < kParts; ++part) {
        const uint8_t* bs = b + (s * kParts + part) * kTileBytes;
        SMELT_HALF_STEP(0, 6, bs);
        if (ng > 1) SMELT_HALF_STEP(1, 7, bs + a_stride);
        if (ng > 2) SMELT_HALF_STEP(2, 6, bs + 2 * a_stride);
        if (ng > 3) SMELT_HALF_STEP(3, 7, bs + 3 * a_stride);
      }
    }
    for (int i = 0; i < ng; ++i) {
      switch (i) {  // the tile number is part of the instruction
        case 0: _tile_stored(0, sums, 64); break;
        case 1: _tile_stored(1, sums, 64); break;
        case 2: _tile_stored(2, sums, 64); break;
        default: _tile_stored(3, sums, 64); break;
      }
      TileMemoryBarrier();
      __m512i cols[16];  // row r's 16 token sums -> token j's 16 row sums
      for (int r = 0; r < 16; ++r) cols[r] = _mm512_load_si512(sums[r]);
      Transpose16(cols);
      const __mmask16 rows = (__mmask16)((1u << n) - 1);
      const int64_t t0 = (g0 + i) * 16;
      for (int j = 0; j < 16 && t0 + j < T; ++j)
        _mm512_mask_storeu_ps(out + (t0 + j) * ld, rows, _mm512_castsi512_ps(cols[j]));
    }
  }
  _tile_release();
}

#undef SMELT_HALF_STEP

}  // namespace

PromptGemm AmxHalfGemm(DType type) {
  if (!CpuHasAmxBf16()) return {};
  switch (type) {
    case DType::kF16: return {AmxHalfGemmImpl<DType::kF16>, SplitTokens<DType::kF16>};
    case DType::kBF16: return {AmxHalfGemmImpl<DType::kBF16>, SplitTokens<DType::kBF16>};
    default: return {};
  }
}

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
PromptGemm AmxHalfGemm(DType) { return {}; }
}  // namespace smelt

#endif

#undef SMELT_AMX_BF16
