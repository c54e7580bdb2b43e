// The AVX-512 twins of the packed super-block types (kernels/packed.h): Q2_K. Two panels' 16 rows
// share each 512-bit register, as in the AMX file's one-token kernel: the 8 chunks of a half
// super-block are loaded once, and shifted by 2k and masked each give 4 consecutive codes of every
// row, the operand of one vpdpbusd against 4 activation bytes broadcast; the 8 of one shift are
// sub-blocks 2p and 2p + 1 (p = 4h + k). Sub-blocks go by pairs: their two
// exact sums (|Σ q·a| ≤ 16·3·128, an int16) side by side in each row's lane, then one vpmaddwd with
// the pair's scales adds sc_j·Σ q·a to isum and one with its minimums m_j·bsums_j to msum. Up to
// four tokens share the unpacked codes. The f32 steps are the reference's (PackedGemmReference),
// so the results are its bits.
//
// Only these functions carry the target attribute; dispatch: CpuHasAvx512Vnni() in packed.cc.
#include "kernels/packed.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "core/gcc_avx512_warnings_off.h"

#include <algorithm>
#include <cstring>

#include "formats/k_quants.h"
#include "kernels/prefetch.h"

#define SMELT_K512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

namespace smelt {
namespace {
namespace packed_k512 {  // unity builds put other files' helpers of these names beside them

// 32 bytes at lo, then 32 at hi.
SMELT_K512 inline __m512i Both32(const void* lo, const void* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(lo))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(hi)), 1);
}
// Two panels' 8 fp16 values each as 16 floats, panel 0's first.
SMELT_K512 inline __m512 BothHalves(const fp16_t* lo, const fp16_t* hi) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo)))),
                            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hi))), 1);
}
SMELT_K512 inline __m512i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// Tokens 0..kNt-1 (row t at a + t·a_stride, Q8_K blocks) against two panels of nb super-blocks:
// y[t·y_stride + r] for the 16 rows (panel 0's, then panel 1's).
template <int kNt>
SMELT_K512 void Q2_KTokens(const BlockQ2_Kx8* p0, const BlockQ2_Kx8* p1, int64_t nb, const uint8_t* a, size_t a_stride,
                           float* y, int64_t y_stride) {
  __m512 acc[kNt];
  for (__m512& v : acc) v = _mm512_setzero_ps();
  const __m512i three = _mm512_set1_epi8(3), low_nibbles = _mm512_set1_epi16(0x0F);
  // Each panel's lines are asked for where the next call (the next two panels) will read.
  const size_t ahead = 2 * nb * sizeof(BlockQ2_Kx8);
  for (int64_t b = 0; b < nb; ++b) {
    PrefetchAhead<sizeof(BlockQ2_Kx8)>(p0 + b, ahead);
    PrefetchAhead<sizeof(BlockQ2_Kx8)>(p1 + b, ahead);
    const BlockQ8_K* act[kNt];
    for (int t = 0; t < kNt; ++t) act[t] = reinterpret_cast<const BlockQ8_K*>(a + t * a_stride) + b;
    __m512i isum[kNt], msum[kNt];
    for (int t = 0; t < kNt; ++t) isum[t] = msum[t] = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      __m512i chunk[8];  // ggml's bytes 32h + 4c .. +3 of the 16 rows
      for (int c = 0; c < 8; ++c) chunk[c] = Both32(p0[b].qs[8 * h + c], p1[b].qs[8 * h + c]);
      for (int k = 0; k < 4; ++k) {  // sub-blocks 2p and 2p + 1: weights 128h + 32k + 0..31
        const int p = 4 * h + k;
        // Row r's lane: the scale bytes of sub-blocks 2p and 2p + 1 as two int16.
        const __m512i bytes = _mm512_cvtepu8_epi16(_mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p0[b].scales[p]))),
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1[b].scales[p])), 1));
        const __m512i sc = _mm512_and_si512(bytes, low_nibbles), m = _mm512_srli_epi16(bytes, 4);
        __m512i s[2][kNt];
        for (int half = 0; half < 2; ++half) {
          __m512i c[4];
          for (int i = 0; i < 4; ++i) c[i] = _mm512_and_si512(_mm512_srli_epi16(chunk[4 * half + i], 2 * k), three);
          for (int t = 0; t < kNt; ++t) {
            const int8_t* qa = act[t]->qs + 128 * h + 32 * k + 16 * half;
            __m512i v = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[0], Broadcast4(qa));
            v = _mm512_dpbusd_epi32(v, c[1], Broadcast4(qa + 4));
            v = _mm512_dpbusd_epi32(v, c[2], Broadcast4(qa + 8));
            s[half][t] = _mm512_dpbusd_epi32(v, c[3], Broadcast4(qa + 12));
          }
        }
        for (int t = 0; t < kNt; ++t) {
          const __m512i pair = _mm512_mask_blend_epi16(0xAAAAAAAA, s[0][t], _mm512_slli_epi32(s[1][t], 16));
          isum[t] = _mm512_add_epi32(isum[t], _mm512_madd_epi16(pair, sc));
          int32_t bsums;  // bsums[2p] and bsums[2p + 1]
          std::memcpy(&bsums, act[t]->bsums + 2 * p, sizeof bsums);
          msum[t] = _mm512_add_epi32(msum[t], _mm512_madd_epi16(m, _mm512_set1_epi32(bsums)));
        }
      }
    }
    const __m512 d_w = BothHalves(p0[b].d, p1[b].d), dmin_w = BothHalves(p0[b].dmin, p1[b].dmin);
    for (int t = 0; t < kNt; ++t) {
      const __m512 d_a = _mm512_set1_ps(act[t]->d);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d_w, d_a), _mm512_cvtepi32_ps(isum[t]), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin_w, d_a), _mm512_cvtepi32_ps(msum[t]), acc[t]);
    }
  }
  for (int t = 0; t < kNt; ++t) _mm512_storeu_ps(y + t * y_stride, acc[t]);
}

SMELT_K512 void Q2_KTwoPanels(const void* panel0, const void* panel1, int64_t nb, const uint8_t* a, size_t a_stride,
                              const int32_t*, const float*, int64_t T, float* y, int64_t y_stride) {
  const auto* p0 = static_cast<const BlockQ2_Kx8*>(panel0);
  const auto* p1 = static_cast<const BlockQ2_Kx8*>(panel1);
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) Q2_KTokens<4>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
  switch (T - t) {
    case 3: return Q2_KTokens<3>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
    case 2: return Q2_KTokens<2>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
    case 1: return Q2_KTokens<1>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
    default: return;
  }
}

// One panel: the two-panel kernel on the panel twice, 16 tokens at a time, its first 8 lanes kept.
SMELT_K512 void Q2_KOnePanel(const void* panel, int64_t nb, const uint8_t* a, size_t a_stride, const int32_t* a_sums,
                             int64_t T, float* y, int64_t y_stride) {
  constexpr int64_t kChunk = 16;
  alignas(64) float both[kChunk * 2 * kPackRows];
  for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
    const int64_t n = std::min(kChunk, T - t0);
    Q2_KTwoPanels(panel, panel, nb, a + t0 * a_stride, a_stride, a_sums, nullptr, n, both, 2 * kPackRows);
    for (int64_t t = 0; t < n; ++t)
      std::memcpy(y + (t0 + t) * y_stride, both + t * 2 * kPackRows, kPackRows * sizeof(float));
  }
}

}  // namespace packed_k512
}  // namespace

PackedGemmFn Avx512KQuantPackedGemm(DType type) { return type == DType::kQ2_K ? packed_k512::Q2_KOnePanel : nullptr; }
PackedGemm2Fn Avx512KQuantPackedGemmTwoPanels(DType type) {
  return type == DType::kQ2_K ? packed_k512::Q2_KTwoPanels : nullptr;
}

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
PackedGemmFn Avx512KQuantPackedGemm(DType) { return nullptr; }
PackedGemm2Fn Avx512KQuantPackedGemmTwoPanels(DType) { return nullptr; }
}  // namespace smelt

#endif

#undef SMELT_K512
