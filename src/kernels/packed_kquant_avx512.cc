// The AVX-512 twins of the packed super-block types (kernels/packed.h): Q2_K … Q6_K. Two
// panels' 16 rows share each 512-bit register, as in the AMX file's one-token kernel: a chunk holds
// 4 code bytes of each of the 16 rows, and shifted and masked it gives 4 consecutive codes of
// every row, the operand of one vpdpbusd against 4 activation bytes broadcast. Each sub-block's
// exact sum is scaled in int32 (SuperBlockSums, per type) into isum, its minimum times the bsums of
// its weights into msum, and per super-block the f32 steps are the reference's
// (PackedGemmReference), so the results are its bits. Up to four tokens share the unpacked codes.
// UnpackPanel restores a panel's 8 rows for the blocked prompt kernels.
//
// The kernels (packed_kquant_avx512_body.h) are compiled twice: with shifts and masks, and for CPUs
// with GFNI with each code register taken out of its bytes by one or two GF(2) affine maps (Q3_K's
// four operations per register become three, Q5_K's nine per chunk five).
//
// Only these functions carry the target attribute; dispatch: CpuHasAvx512Vnni() and
// CpuHasAvx512VnniGfni() in packed.cc.
#include "kernels/packed.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "core/gcc_avx512_warnings_off.h"

#include <algorithm>
#include <type_traits>
#include <cstring>

#include "formats/k_quants.h"
#include "kernels/kquant_scales_avx512.h"
#include "kernels/prefetch.h"

#define SMELT_K512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

namespace smelt {
namespace {
namespace packed_k512 {  // unity builds put other files' helpers of these names beside them

#define SMELT_K512_GFNI 0
#include "kernels/packed_kquant_avx512_body.h"
#undef SMELT_K512_GFNI

// Chunks 0 .. 16·n − 1 of a packed byte array (4 bytes of each of the 8 rows per chunk) back to
// 64·n bytes of each row, row r's at out + r·row_bytes, by a transpose of 32-bit elements: 16 chunks
// (8 registers of two chunks × 8 rows) become 8 rows × 16 chunks in three rounds of vpermt2d, each
// merging two registers' halves.
SMELT_K512 void TransposeChunks(const uint8_t (*chunks)[kPackRows * 4], int n, uint8_t* out, size_t row_bytes) {
  alignas(64) static constexpr int32_t kRound[3][2][16] = {
      // Round 1, rows 4h + q: chunks 4k .. 4k + 3 of the row from R_2k, R_2k+1.
      {{0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27},
       {4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31}},
      // Round 2, row pairs: chunks 8m .. 8m + 7 of rows 2·(quarter % 2) + p.
      {{0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23},
       {8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31}},
      // Round 3, one row: chunks 0 .. 15.
      {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
       {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}}};
  __m512i idx[3][2];
  for (int r = 0; r < 3; ++r)
    for (int h = 0; h < 2; ++h) idx[r][h] = _mm512_load_si512(kRound[r][h]);
  for (int h = 0; h < n; ++h) {
    __m512i v[8], t[8];
    for (int k = 0; k < 8; ++k) v[k] = _mm512_loadu_si512(chunks[16 * h + 2 * k]);
    for (int k = 0; k < 4; ++k)
      for (int half = 0; half < 2; ++half) t[2 * k + half] = _mm512_permutex2var_epi32(v[2 * k], idx[0][half], v[2 * k + 1]);
    // t[2k + half]: rows 4·half .. +3, chunks 4k .. 4k + 3 each.
    for (int m = 0; m < 2; ++m)
      for (int quarter = 0; quarter < 4; ++quarter)
        v[4 * m + quarter] = _mm512_permutex2var_epi32(t[4 * m + quarter / 2], idx[1][quarter % 2], t[4 * m + 2 + quarter / 2]);
    // v[4m + quarter]: rows 2·quarter, 2·quarter + 1, chunks 8m .. 8m + 7 each.
    for (int r = 0; r < kPackRows; ++r)
      _mm512_storeu_si512(out + r * row_bytes + 64 * h, _mm512_permutex2var_epi32(v[r / 2], idx[2][r % 2], v[4 + r / 2]));
  }
}

// The 8 rows of one panel back in their source layout (UnpackRow of each, the same bytes): per
// block d, dmin and the scale and Q3_K's/Q5_K's high-bit bytes by row, and the code chunks (and
// Q6_K's 16 chunks of qh) by TransposeChunks.
template <class Src, class Packed>
SMELT_K512 void UnpackPanel(const void* panel_bytes, int64_t nb, uint8_t* dst, size_t row_bytes) {
  const auto* panel = static_cast<const Packed*>(panel_bytes);
  for (int64_t b = 0; b < nb; ++b) {
    const Packed& w = panel[b];
    for (int r = 0; r < kPackRows; ++r) {
      Src& out = reinterpret_cast<Src*>(dst + r * row_bytes)[b];
      out.d = w.d[r];
      if constexpr (requires { w.dmin; }) out.dmin = w.dmin[r];
      constexpr int width = sizeof(w.scales[0]) / kPackRows;
      for (size_t c = 0; c < sizeof(w.scales) / sizeof(w.scales[0]); ++c)
        std::memcpy(out.scales + c * width, &w.scales[c][r * width], width);
      if constexpr (requires { w.qh; } && !requires { w.ql; })  // Q5_K (Q6_K: below)
        for (int c = 0; c < 8; ++c) std::memcpy(out.qh + 4 * c, &w.qh[c][4 * r], 4);
      if constexpr (requires { w.hmask; })
        for (int c = 0; c < 8; ++c) std::memcpy(out.hmask + 4 * c, &w.hmask[c][4 * r], 4);
    }
    uint8_t* const row0 = dst + b * sizeof(Src);
    if constexpr (requires { w.ql; }) {  // Q6_K
      TransposeChunks(w.ql, 2, row0 + offsetof(Src, ql), row_bytes);
      TransposeChunks(w.qh, 1, row0 + offsetof(Src, qh), row_bytes);
    } else {
      TransposeChunks(w.qs, sizeof(w.qs) / sizeof(w.qs[0]) / 16, row0 + offsetof(Src, qs), row_bytes);
    }
  }
}

}  // namespace packed_k512

// The same kernels with the codes taken out by GF(2) affine maps (CPUs with GFNI).
#undef SMELT_K512
#define SMELT_K512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni")))
namespace packed_k512_gfni {
#define SMELT_K512_GFNI 1
#include "kernels/packed_kquant_avx512_body.h"
#undef SMELT_K512_GFNI
}  // namespace packed_k512_gfni
}  // namespace

namespace {

// f.template operator()<Src, Packed>() for a super-block type, its result; R{} for another type.
template <class R, class F>
R ForSuperBlock(DType type, F&& f) {
  switch (type) {
    case DType::kQ2_K: return f.template operator()<BlockQ2_K, BlockQ2_Kx8>();
    case DType::kQ3_K: return f.template operator()<BlockQ3_K, BlockQ3_Kx8>();
    case DType::kQ4_K: return f.template operator()<BlockQ4_K, BlockQ4_Kx8>();
    case DType::kQ5_K: return f.template operator()<BlockQ5_K, BlockQ5_Kx8>();
    case DType::kQ6_K: return f.template operator()<BlockQ6_K, BlockQ6_Kx8>();
    default: return R{};
  }
}

}  // namespace

PackedGemmFn Avx512KQuantPackedGemm(DType type, bool gfni) {
  return ForSuperBlock<PackedGemmFn>(type, [gfni]<class, class Packed>() {
    return gfni ? packed_k512_gfni::OnePanel<Packed> : packed_k512::OnePanel<Packed>;
  });
}
PackedGemm2Fn Avx512KQuantPackedGemmTwoPanels(DType type, bool gfni) {
  return ForSuperBlock<PackedGemm2Fn>(type, [gfni]<class, class Packed>() {
    return gfni ? packed_k512_gfni::TwoPanels<Packed> : packed_k512::TwoPanels<Packed>;
  });
}
UnpackPanelFn Avx512UnpackSuperBlockPanel(DType type) {
  return ForSuperBlock<UnpackPanelFn>(type, []<class Src, class Packed>() { return packed_k512::UnpackPanel<Src, Packed>; });
}

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
PackedGemmFn Avx512KQuantPackedGemm(DType, bool) { return nullptr; }
PackedGemm2Fn Avx512KQuantPackedGemmTwoPanels(DType, bool) { return nullptr; }
UnpackPanelFn Avx512UnpackSuperBlockPanel(DType) { return nullptr; }
}  // namespace smelt

#endif

#undef SMELT_K512
