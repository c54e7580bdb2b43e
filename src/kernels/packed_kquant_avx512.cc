// The AVX-512 twins of the packed super-block types (kernels/packed.h): Q2_K, Q3_K, Q4_K, Q5_K. Two
// panels' 16 rows share each 512-bit register, as in the AMX file's one-token kernel: a chunk holds
// 4 code bytes of each of the 16 rows, and shifted and masked it gives 4 consecutive codes of
// every row, the operand of one vpdpbusd against 4 activation bytes broadcast. Each sub-block's
// exact sum is scaled in int32 (SuperBlockSums, per type) into isum, its minimum times the bsums of
// its weights into msum, and per super-block the f32 steps are the reference's
// (PackedGemmReference), so the results are its bits. Up to four tokens share the unpacked codes.
// UnpackPanel restores a panel's 8 rows for the blocked prompt kernels.
//
// Only these functions carry the target attribute; dispatch: CpuHasAvx512Vnni() in packed.cc.
#include "kernels/packed.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "core/gcc_avx512_warnings_off.h"

#include <algorithm>
#include <type_traits>
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

// Sub-blocks 2p and 2p + 1 of 16 weights each (codes c[half][i]: weights 16·half + 4i .. +3 of the
// 32 from the activation codes at `first`) against kNt tokens: their two sums (each within an
// int16) side by side in each row's lane, one vpmaddwd with the pair's scales into isum and one of
// `min` with the pair's bsums into msum.
template <int kNt>
SMELT_K512 inline void SubBlockPair(const __m512i (&c)[2][4], const BlockQ8_K* const* act, int first, int p,
                                    __m512i scale, __m512i min, __m512i* isum, __m512i* msum) {
  for (int t = 0; t < kNt; ++t) {
    __m512i s[2];
    for (int half = 0; half < 2; ++half) {
      const int8_t* qa = act[t]->qs + first + 16 * half;
      __m512i v = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[half][0], Broadcast4(qa));
      v = _mm512_dpbusd_epi32(v, c[half][1], Broadcast4(qa + 4));
      v = _mm512_dpbusd_epi32(v, c[half][2], Broadcast4(qa + 8));
      s[half] = _mm512_dpbusd_epi32(v, c[half][3], Broadcast4(qa + 12));
    }
    const __m512i pair = _mm512_mask_blend_epi16(0xAAAAAAAA, s[0], _mm512_slli_epi32(s[1], 16));
    isum[t] = _mm512_add_epi32(isum[t], _mm512_madd_epi16(pair, scale));
    int32_t bsums;  // bsums[2p] and bsums[2p + 1]
    std::memcpy(&bsums, act[t]->bsums + 2 * p, sizeof bsums);
    msum[t] = _mm512_add_epi32(msum[t], _mm512_madd_epi16(min, _mm512_set1_epi32(bsums)));
  }
}

// Q2_K: one super-block of two panels against kNt tokens' Q8_K blocks, added to isum and msum. The
// 8 chunks of a half super-block are loaded once; shifted by 2k they hold sub-blocks 2p and 2p + 1
// (p = 4h + k), whose two sums (|Σ q·a| ≤ 16·3·128, an int16) sit side by side in each row's lane
// for one vpmaddwd with the pair's scales and one with its minimums.
template <int kNt>
SMELT_K512 inline void SuperBlockSums(const BlockQ2_Kx8& w0, const BlockQ2_Kx8& w1, const BlockQ8_K* const* act,
                                      __m512i* isum, __m512i* msum) {
  const __m512i three = _mm512_set1_epi8(3), low_nibbles = _mm512_set1_epi16(0x0F);
  for (int h = 0; h < 2; ++h) {
    __m512i chunk[8];  // ggml's bytes 32h + 4c .. +3 of the 16 rows
    for (int c = 0; c < 8; ++c) chunk[c] = Both32(w0.qs[8 * h + c], w1.qs[8 * h + c]);
    for (int k = 0; k < 4; ++k) {  // sub-blocks 2p and 2p + 1: weights 128h + 32k + 0..31
      const int p = 4 * h + k;
      // Row r's lane: the scale bytes of sub-blocks 2p and 2p + 1 as two int16.
      const __m512i bytes = _mm512_cvtepu8_epi16(_mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w0.scales[p]))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(w1.scales[p])), 1));
      const __m512i sc = _mm512_and_si512(bytes, low_nibbles), m = _mm512_srli_epi16(bytes, 4);
      __m512i c[2][4];
      for (int half = 0; half < 2; ++half)
        for (int i = 0; i < 4; ++i) c[half][i] = _mm512_and_si512(_mm512_srli_epi16(chunk[4 * half + i], 2 * k), three);
      SubBlockPair<kNt>(c, act, 128 * h + 32 * k, p, sc, m, isum, msum);
    }
  }
}

// Q3_K: as Q2_K, each code's third bit shifted in from the hmask chunks (code + 4 ∈ 0..7, the
// unsigned operand), the 16 signed 6-bit scales of the 16 rows decoded four per row lane, and per
// pair of sub-blocks one vpmaddwd of their scales with their sums and one with their bsums: isum =
// Σ sc_j·(Σ (q + 4)·a − 4·bsums_j), the reference's exact integer.
template <int kNt>
SMELT_K512 inline void SuperBlockSums(const BlockQ3_Kx8& w0, const BlockQ3_Kx8& w1, const BlockQ8_K* const* act,
                                      __m512i* isum, __m512i*) {
  const __m512i three = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4), nibble = _mm512_set1_epi8(0x0F),
                top = _mm512_set1_epi8(0x30);
  // Q3KScale of sub-blocks 4q .. 4q + 3 in bytes 0..3 of each row's lane of sc[q], as signed bytes.
  const __m512i s0 = Both32(w0.scales[0], w1.scales[0]), s1 = Both32(w0.scales[1], w1.scales[1]),
                s2 = Both32(w0.scales[2], w1.scales[2]);
  const __m512i low[4] = {_mm512_and_si512(s0, nibble), _mm512_and_si512(s1, nibble),
                          _mm512_and_si512(_mm512_srli_epi16(s0, 4), nibble),
                          _mm512_and_si512(_mm512_srli_epi16(s1, 4), nibble)};
  const __m512i high[4] = {_mm512_slli_epi16(s2, 4), _mm512_slli_epi16(s2, 2), s2, _mm512_srli_epi16(s2, 2)};
  __m512i sc[4];
  for (int q = 0; q < 4; ++q)
    sc[q] = _mm512_sub_epi8(_mm512_or_si512(low[q], _mm512_and_si512(high[q], top)), _mm512_set1_epi8(32));
  __m512i hm[8];
  for (int c = 0; c < 8; ++c) hm[c] = Both32(w0.hmask[c], w1.hmask[c]);
  __m512i msum[kNt];  // Σ sc_j·bsums_j
  for (int t = 0; t < kNt; ++t) msum[t] = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {
    __m512i chunk[8];  // ggml's bytes 32h + 4c .. +3 of the 16 rows
    for (int c = 0; c < 8; ++c) chunk[c] = Both32(w0.qs[8 * h + c], w1.qs[8 * h + c]);
    for (int k = 0; k < 4; ++k) {  // sub-blocks 2p and 2p + 1: weights 128h + 32k + 0..31
      const int p = 4 * h + k, bit = 4 * h + k;
      // Row lane q of each 128-bit quarter: the signed scale bytes 2(p % 2), 2(p % 2) + 1 of its
      // dword as the high bytes of two int16, then shifted down with their sign.
      const int first = 2 * (p % 2);
      const __m512i quarter = _mm512_set4_epi32(12, 8, 4, 0);
      const __m512i take = _mm512_add_epi32(_mm512_set1_epi32(0x80 | first << 8 | 0x80 << 16 | (first + 1) << 24),
                                            _mm512_or_si512(_mm512_slli_epi32(quarter, 8), _mm512_slli_epi32(quarter, 24)));
      const __m512i scale = _mm512_srai_epi16(_mm512_shuffle_epi8(sc[p / 2], take), 8);
      __m512i c[2][4];
      for (int half = 0; half < 2; ++half)
        for (int i = 0; i < 4; ++i) {
          const __m512i third = bit >= 2 ? _mm512_srli_epi16(hm[4 * half + i], bit - 2) : _mm512_slli_epi16(hm[4 * half + i], 2 - bit);
          c[half][i] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(chunk[4 * half + i], 2 * k), three), third,
                                                 four, 0xF8);  // a | (b & c)
        }
      SubBlockPair<kNt>(c, act, 128 * h + 32 * k, p, scale, scale, isum, msum);
    }
  }
  for (int t = 0; t < kNt; ++t) isum[t] = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(msum[t], 2));
}

// Q4_K and Q5_K: per super-block the 16 rows' 12 scale bytes (3 chunks) give the 6-bit scales and
// minimums of sub-blocks 0..3 and 4..7, 4 per row lane; per 64 weights (g) 8 code chunks, each one
// vpdpbusd of its low nibbles (sub-block 2g) and one of its high nibbles (2g + 1) per token; a
// sub-block's sum (up to 32·31·128, an int32) times its scale by vpmulld, its minimum times the
// pair of bsums of its 32 weights by vpmaddwd.
template <int kNt, class Packed>
  requires(!std::is_same_v<Packed, BlockQ2_Kx8> && !std::is_same_v<Packed, BlockQ3_Kx8>)
SMELT_K512 inline void SuperBlockSums(const Packed& w0, const Packed& w1, const BlockQ8_K* const* act, __m512i* isum,
                                      __m512i* msum) {
  const __m512i nibble = _mm512_set1_epi8(0x0F), six = _mm512_set1_epi8(0x3F), top = _mm512_set1_epi8(0x30);
  // GetScaleMinK4 for all 8 sub-blocks of the 16 rows: byte j of a row's lane in sc[0]/m[0] is
  // sub-block j's, in sc[1]/m[1] sub-block 4 + j's.
  const __m512i s0 = Both32(w0.scales[0], w1.scales[0]), s1 = Both32(w0.scales[1], w1.scales[1]),
                s2 = Both32(w0.scales[2], w1.scales[2]);
  const __m512i sc[2] = {_mm512_and_si512(s0, six),
                         _mm512_or_si512(_mm512_and_si512(s2, nibble), _mm512_and_si512(_mm512_srli_epi16(s0, 2), top))};
  const __m512i m[2] = {_mm512_and_si512(s1, six),
                        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(s2, 4), nibble),
                                        _mm512_and_si512(_mm512_srli_epi16(s1, 2), top))};
  for (int g = 0; g < 4; ++g) {
    __m512i sum[2][kNt];
    for (int t = 0; t < kNt; ++t) sum[0][t] = sum[1][t] = _mm512_setzero_si512();
    for (int c = 0; c < 8; ++c) {
      const __m512i q = Both32(w0.qs[8 * g + c], w1.qs[8 * g + c]);
      __m512i lo = _mm512_and_si512(q, nibble), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), nibble);
      if constexpr (requires { w0.qh; }) {  // Q5_K: bits 2g and 2g + 1 of the qh bytes to bit 4
        const __m512i fifth = Both32(w0.qh[c], w1.qh[c]);
        const __m512i sixteen = _mm512_set1_epi8(0x10);
        const __m512i bit_lo = 2 * g <= 4 ? _mm512_slli_epi16(fifth, 4 - 2 * g) : _mm512_srli_epi16(fifth, 2 * g - 4);
        const __m512i bit_hi = 2 * g + 1 <= 4 ? _mm512_slli_epi16(fifth, 3 - 2 * g) : _mm512_srli_epi16(fifth, 2 * g - 3);
        lo = _mm512_or_si512(lo, _mm512_and_si512(bit_lo, sixteen));
        hi = _mm512_or_si512(hi, _mm512_and_si512(bit_hi, sixteen));
      }
      for (int t = 0; t < kNt; ++t) {
        const int8_t* qa = act[t]->qs + 64 * g + 4 * c;
        sum[0][t] = _mm512_dpbusd_epi32(sum[0][t], lo, Broadcast4(qa));
        sum[1][t] = _mm512_dpbusd_epi32(sum[1][t], hi, Broadcast4(qa + 32));
      }
    }
    for (int h = 0; h < 2; ++h) {
      const int j = 2 * g + h;  // the sub-block: byte j % 4 of sc[j / 4], m[j / 4] in every lane
      const int k = j % 4;
      // vpshufb indexes within 128 bits: row lane q of each 128-bit quarter reads its byte 4q + k,
      // zero-extended (the scale) or twice as two int16 (the minimum).
      const __m512i quarter = _mm512_set4_epi32(12, 8, 4, 0);
      const __m512i take = _mm512_add_epi32(_mm512_set1_epi32(k | (int)0x80808000), quarter);
      const __m512i take_pair = _mm512_add_epi32(_mm512_set1_epi32(k | 0x80 << 8 | k << 16 | (int)(0x80u << 24)),
                                                 _mm512_or_si512(quarter, _mm512_slli_epi32(quarter, 16)));
      const __m512i scale = _mm512_shuffle_epi8(sc[j / 4], take), min = _mm512_shuffle_epi8(m[j / 4], take_pair);
      for (int t = 0; t < kNt; ++t) {
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sum[h][t], scale));
        int32_t bsums;  // the bsums of sub-block j's two halves
        std::memcpy(&bsums, act[t]->bsums + 2 * j, sizeof bsums);
        msum[t] = _mm512_add_epi32(msum[t], _mm512_madd_epi16(min, _mm512_set1_epi32(bsums)));
      }
    }
  }
}

// Tokens 0..kNt-1 (row t at a + t·a_stride, Q8_K blocks) against two panels of nb super-blocks:
// y[t·y_stride + r] for the 16 rows (panel 0's, then panel 1's).
template <class Packed, int kNt>
SMELT_K512 void Tokens(const Packed* p0, const Packed* p1, int64_t nb, const uint8_t* a, size_t a_stride, float* y,
                       int64_t y_stride) {
  __m512 acc[kNt];
  for (__m512& v : acc) v = _mm512_setzero_ps();
  // Each panel's lines are asked for where the next call (the next two panels) will read.
  const size_t ahead = 2 * nb * sizeof(Packed);
  for (int64_t b = 0; b < nb; ++b) {
    PrefetchAhead<sizeof(Packed)>(p0 + b, ahead);
    PrefetchAhead<sizeof(Packed)>(p1 + b, ahead);
    const BlockQ8_K* act[kNt];
    for (int t = 0; t < kNt; ++t) act[t] = reinterpret_cast<const BlockQ8_K*>(a + t * a_stride) + b;
    __m512i isum[kNt], msum[kNt];
    for (int t = 0; t < kNt; ++t) isum[t] = msum[t] = _mm512_setzero_si512();
    SuperBlockSums<kNt>(p0[b], p1[b], act, isum, msum);
    const __m512 d_w = BothHalves(p0[b].d, p1[b].d);
    for (int t = 0; t < kNt; ++t) {
      const __m512 d_a = _mm512_set1_ps(act[t]->d);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d_w, d_a), _mm512_cvtepi32_ps(isum[t]), acc[t]);
      if constexpr (requires { p0->dmin; }) {
        const __m512 dmin_w = BothHalves(p0[b].dmin, p1[b].dmin);
        acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin_w, d_a), _mm512_cvtepi32_ps(msum[t]), acc[t]);
      }
    }
  }
  for (int t = 0; t < kNt; ++t) _mm512_storeu_ps(y + t * y_stride, acc[t]);
}

// The two-panel kernel of a super-block type: 4 tokens at a time, then the rest.
template <class Packed>
SMELT_K512 void TwoPanels(const void* panel0, const void* panel1, int64_t nb, const uint8_t* a, size_t a_stride,
                          const int32_t*, const float*, int64_t T, float* y, int64_t y_stride) {
  const auto* p0 = static_cast<const Packed*>(panel0);
  const auto* p1 = static_cast<const Packed*>(panel1);
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) Tokens<Packed, 4>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
  switch (T - t) {
    case 3: return Tokens<Packed, 3>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
    case 2: return Tokens<Packed, 2>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
    case 1: return Tokens<Packed, 1>(p0, p1, nb, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
    default: return;
  }
}

// One panel: the two-panel kernel on the panel twice, 16 tokens at a time, its first 8 lanes kept.
template <class Packed>
SMELT_K512 void OnePanel(const void* panel, int64_t nb, const uint8_t* a, size_t a_stride, const int32_t* a_sums,
                         int64_t T, float* y, int64_t y_stride) {
  constexpr int64_t kChunk = 16;
  alignas(64) float both[kChunk * 2 * kPackRows];
  for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
    const int64_t n = std::min(kChunk, T - t0);
    TwoPanels<Packed>(panel, panel, nb, a + t0 * a_stride, a_stride, a_sums, nullptr, n, both, 2 * kPackRows);
    for (int64_t t = 0; t < n; ++t)
      std::memcpy(y + (t0 + t) * y_stride, both + t * 2 * kPackRows, kPackRows * sizeof(float));
  }
}

// The 8 rows of one panel back in their source layout (UnpackRow of each, the same bytes): per
// block d, dmin and the scale and fifth-bit bytes by row, and the code chunks by a transpose of
// 32-bit elements: 16 chunks (8 registers of two chunks × 8 rows) become 8 rows × 16 chunks in
// three rounds of vpermt2d, each merging two registers' halves.
template <class Src, class Packed>
SMELT_K512 void UnpackPanel(const void* panel_bytes, int64_t nb, uint8_t* dst, size_t row_bytes) {
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
  const auto* panel = static_cast<const Packed*>(panel_bytes);
  constexpr int kChunks = sizeof(Packed::qs) / sizeof(Packed::qs[0]);  // 16 or 32
  for (int64_t b = 0; b < nb; ++b) {
    const Packed& w = panel[b];
    for (int r = 0; r < kPackRows; ++r) {
      Src& out = reinterpret_cast<Src*>(dst + r * row_bytes)[b];
      out.d = w.d[r];
      if constexpr (requires { w.dmin; }) out.dmin = w.dmin[r];
      constexpr int width = sizeof(w.scales[0]) / kPackRows;
      for (size_t c = 0; c < sizeof(w.scales) / sizeof(w.scales[0]); ++c)
        std::memcpy(out.scales + c * width, &w.scales[c][r * width], width);
      if constexpr (requires { w.qh; })
        for (int c = 0; c < 8; ++c) std::memcpy(out.qh + 4 * c, &w.qh[c][4 * r], 4);
      if constexpr (requires { w.hmask; })
        for (int c = 0; c < 8; ++c) std::memcpy(out.hmask + 4 * c, &w.hmask[c][4 * r], 4);
    }
    for (int h = 0; h < kChunks / 16; ++h) {
      __m512i v[8], t[8];
      for (int k = 0; k < 8; ++k) v[k] = _mm512_loadu_si512(w.qs[16 * h + 2 * k]);
      for (int k = 0; k < 4; ++k)
        for (int half = 0; half < 2; ++half) t[2 * k + half] = _mm512_permutex2var_epi32(v[2 * k], idx[0][half], v[2 * k + 1]);
      // t[2k + half]: rows 4·half .. +3, chunks 4k .. 4k + 3 each.
      for (int m = 0; m < 2; ++m)
        for (int quarter = 0; quarter < 4; ++quarter)
          v[4 * m + quarter] = _mm512_permutex2var_epi32(t[4 * m + quarter / 2], idx[1][quarter % 2], t[4 * m + 2 + quarter / 2]);
      // v[4m + quarter]: rows 2·quarter, 2·quarter + 1, chunks 8m .. 8m + 7 each.
      for (int r = 0; r < kPackRows; ++r) {
        const __m512i row = _mm512_permutex2var_epi32(v[r / 2], idx[2][r % 2], v[4 + r / 2]);
        Src& out = reinterpret_cast<Src*>(dst + r * row_bytes)[b];
        _mm512_storeu_si512(out.qs + 64 * h, row);
      }
    }
  }
}

}  // namespace packed_k512
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
    default: return R{};
  }
}

}  // namespace

PackedGemmFn Avx512KQuantPackedGemm(DType type) {
  return ForSuperBlock<PackedGemmFn>(type, []<class, class Packed>() { return packed_k512::OnePanel<Packed>; });
}
PackedGemm2Fn Avx512KQuantPackedGemmTwoPanels(DType type) {
  return ForSuperBlock<PackedGemm2Fn>(type, []<class, class Packed>() { return packed_k512::TwoPanels<Packed>; });
}
UnpackPanelFn Avx512UnpackSuperBlockPanel(DType type) {
  return ForSuperBlock<UnpackPanelFn>(type, []<class Src, class Packed>() { return packed_k512::UnpackPanel<Src, Packed>; });
}

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
PackedGemmFn Avx512KQuantPackedGemm(DType) { return nullptr; }
PackedGemm2Fn Avx512KQuantPackedGemmTwoPanels(DType) { return nullptr; }
UnpackPanelFn Avx512UnpackSuperBlockPanel(DType) { return nullptr; }
}  // namespace smelt

#endif

#undef SMELT_K512
