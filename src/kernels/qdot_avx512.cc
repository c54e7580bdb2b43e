// AVX-512 twins of the half-precision row dots (kernels/qdot.h: f16 · f16 and bf16 · bf16) and
// their four-token forms, of i8_pc · f32, of the bitmask-sparse rows, and of the Q3_K row dot (further below). The AVX2 twin (qdot_avx2.cc DotHalves) keeps four 8-lane accumulators
// over steps of 32 values; here the same four are two 16-lane registers, (acc0 | acc1) and
// (acc2 | acc3), each lane doing the AVX2 twin's fused multiply-adds on the same values, the
// 8-value tail steps masked to acc0's lanes, and the same final additions in the same order: the
// results are the AVX2 twin's bits, so a CPU gives the same logits whichever of the two runs. The
// four-token form widens each step's weights once for the four tokens.
//
// Only these functions carry the target attribute (dispatch: CpuHasAvx512F() in qdot.cc).
#include "kernels/qdot.h"

#include "core/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

#include "core/half.h"
#include "formats/k_quants.h"
#include "formats/per_channel.h"
#include "formats/q8_0.h"
#include "formats/sparse24.h"
#include "formats/sparse_mask.h"
#include "kernels/horizontal_sum_avx2.h"
#include "kernels/kquant_row_avx2.h"
#include "kernels/prefetch.h"
#include "kernels/qdot_table4.h"
#include "kernels/s24w4_avx512.h"
#include "kernels/sparse_w4.h"
#include "kernels/sparse_w4_avx512.h"

#include "core/gcc_avx512_warnings_off.h"

#define SMELT_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512vl,avx512bw")))
#define SMELT_VNNI512 __attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512vl,avx512bw,avx512vnni")))
#define SMELT_VBMI2 __attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512vl,avx512bw,avx512vbmi2,avx512vnni")))
#define SMELT_VBMI __attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512vl,avx512bw,avx512vbmi,avx512vnni,gfni")))

namespace smelt {
namespace {

// Sixteen halves at p widened to f32 (only the first 8 when `low8`; the others read as 0).
SMELT_AVX512 inline __m512 WidenF16(const uint8_t* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
SMELT_AVX512 inline __m512 WidenBf16(const uint8_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
SMELT_AVX512 inline float HalfF16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return _cvtsh_ss(h);
}
inline float HalfBf16(const uint8_t* p) { return ReadBf16(p); }

// The rows of the widening dots below: kBytes per element, kHeader bytes before the first (where
// the row keeps a scale, Scale reads it; 1 where it has none, and the product by 1 changes no bit),
// Widen(p, m): 16 elements as f32 (lanes outside m read as 0), One(p): one element as f32.
template <__m512 (*W)(const uint8_t*, __mmask16), float (*O)(const uint8_t*)>
struct HalfRow {
  static constexpr size_t kBytes = 2, kHeader = 0;
  SMELT_AVX512 static __m512 Widen(const uint8_t* p, __mmask16 m) { return W(p, m); }
  SMELT_AVX512 static float One(const uint8_t* p) { return O(p); }
  SMELT_AVX512 static float Scale(const uint8_t*) { return 1.0f; }
};
using F16Row = HalfRow<WidenF16, HalfF16>;
using Bf16Row = HalfRow<WidenBf16, HalfBf16>;
struct I8PCRow {  // i8_pc (formats/per_channel.h): an f32 row scale, then int8 codes
  static constexpr size_t kBytes = 1, kHeader = sizeof(RowHeaderI8);
  SMELT_AVX512 static __m512 Widen(const uint8_t* p, __mmask16 m) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
  }
  SMELT_AVX512 static float One(const uint8_t* p) { return (float)(int8_t)*p; }
  SMELT_AVX512 static float Scale(const uint8_t* row) {
    float d;
    std::memcpy(&d, row, sizeof d);
    return d;
  }
};
struct F32Row {  // f32 activations
  static constexpr size_t kBytes = 4, kHeader = 0;
  SMELT_AVX512 static __m512 Widen(const uint8_t* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
  SMELT_AVX512 static float One(const uint8_t* p) {
    float v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
};

constexpr __mmask16 kAll = 0xFFFF, kLow8 = 0x00FF;

// The single-row kernel of a kernel over `rows` activation rows: Rows(w, a, stride, n, out) with
// one row (no target attribute needed: it only calls the twin).
template <void (*Rows)(const void*, const void*, size_t, int64_t, float*)>
float OneRow(const void* w_row, const void* a_row, int64_t n) {
  float out;
  Rows(w_row, a_row, 0, n, &out);
  return out;
}

// The single-row kernel of a kernel over `rows` weight rows: Rows(w, w_stride, a, n, out) with one
// row (no target attribute needed: it only calls the twin).
template <void (*Rows)(const void*, size_t, const void*, int64_t, float*)>
float OneWeightRow(const void* w_row, const void* a_row, int64_t n) {
  float out;
  Rows(w_row, 0, a_row, n, &out);
  return out;
}

// The AVX2 twin's finish: HorizontalSum((acc0 + acc1) + (acc2 + acc3)), then the scalar tail.
SMELT_AVX512 inline float Finish(__m512 a01, __m512 a23) {
  const __m256 s01 = _mm256_add_ps(_mm512_castps512_ps256(a01), _mm512_extractf32x8_ps(a01, 1));
  const __m256 s23 = _mm256_add_ps(_mm512_castps512_ps256(a23), _mm512_extractf32x8_ps(a23, 1));
  return HorizontalSum(_mm256_add_ps(s01, s23));
}

// W weight rows (w + r·w_stride) against A activation rows (a + t·a_stride) into out[t·ld + r]:
// per (row, token) the AVX2 twin's sums (two accumulators of 16 lanes, then Finish, the scalar
// tail and the row's scale), so every form gives the single-row, single-token bits. Each step's
// weights are widened once for the A tokens and its activations once for the W rows. With several
// weight rows per call each row's lines are asked for where the next call reads them (W rows on:
// several weight streams in flight when decoding), else kPrefetchDistance ahead.
// The kinds: f16 · f16 and bf16 · bf16 (the half dots), and i8_pc · f32 (qdot_avx2.cc DotI8PC:
// the codes widened to f32, the row scale applied last).
template <class WRow, class ARow, int W, int A>
SMELT_AVX512 void DotWidened512Block(const void* w, size_t w_stride, const void* a, size_t a_stride, int64_t n,
                                     float* out, int64_t ld) {
  constexpr size_t kW = WRow::kBytes, kA = ARow::kBytes;
  const uint8_t* x[W];
  const uint8_t* y[A];
  for (int r = 0; r < W; ++r) x[r] = static_cast<const uint8_t*>(w) + r * w_stride + WRow::kHeader;
  for (int t = 0; t < A; ++t) y[t] = static_cast<const uint8_t*>(a) + t * a_stride;
  const size_t ahead = W > 1 ? W * w_stride : kPrefetchDistance;
  __m512 a01[W][A], a23[W][A];
  for (int r = 0; r < W; ++r)
    for (int t = 0; t < A; ++t) a01[r][t] = a23[r][t] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 w01[W], w23[W];
    for (int r = 0; r < W; ++r) {
      PrefetchAhead<32 * kW>(x[r] + kW * i, ahead);
      w01[r] = WRow::Widen(x[r] + kW * i, kAll), w23[r] = WRow::Widen(x[r] + kW * (i + 16), kAll);
    }
    for (int t = 0; t < A; ++t) {
      const __m512 y01 = ARow::Widen(y[t] + kA * i, kAll), y23 = ARow::Widen(y[t] + kA * (i + 16), kAll);
      for (int r = 0; r < W; ++r) {
        a01[r][t] = _mm512_fmadd_ps(w01[r], y01, a01[r][t]);
        a23[r][t] = _mm512_fmadd_ps(w23[r], y23, a23[r][t]);
      }
    }
  }
  for (; i + 8 <= n; i += 8)
    for (int t = 0; t < A; ++t) {
      const __m512 v = ARow::Widen(y[t] + kA * i, kLow8);
      for (int r = 0; r < W; ++r) a01[r][t] = _mm512_mask3_fmadd_ps(WRow::Widen(x[r] + kW * i, kLow8), v, a01[r][t], kLow8);
    }
  for (int r = 0; r < W; ++r)
    for (int t = 0; t < A; ++t) {
      float sum = Finish(a01[r][t], a23[r][t]);
      for (int64_t j = i; j < n; ++j) sum += WRow::One(x[r] + kW * j) * ARow::One(y[t] + kA * j);
      out[t * ld + r] = WRow::Scale(x[r] - WRow::kHeader) * sum;
    }
}

// Its forms: one row and token, four tokens, four weight rows (decoding), two rows × four tokens
// (several sequences; DotWidened512Block<.., 2, 4> itself).
template <class WRow, class ARow>
SMELT_AVX512 float DotWidened512(const void* w_row, const void* a_row, int64_t n) {
  float out;
  DotWidened512Block<WRow, ARow, 1, 1>(w_row, 0, a_row, 0, n, &out, 1);
  return out;
}
template <class WRow, class ARow>
SMELT_AVX512 void DotWidened512x4(const void* w_row, const void* a_rows, size_t a_stride, int64_t n, float* out) {
  DotWidened512Block<WRow, ARow, 1, 4>(w_row, 0, a_rows, a_stride, n, out, 1);
}
template <class WRow, class ARow>
SMELT_AVX512 void DotWidened512Rows4(const void* w_rows, size_t w_stride, const void* a_row, int64_t n, float* out) {
  DotWidened512Block<WRow, ARow, 4, 1>(w_rows, w_stride, a_row, 0, n, out, 1);
}

// Bitmask rows (formats/sparse_mask.h) against Q8_0 activations: the AVX2 twin's algorithm
// (qdot_avx2.cc DotSparseMaskRows) with each block's codes put in place by one vpexpandb from
// memory (AVX512-VBMI2) instead of four table-driven byte shuffles, and its signed sums by one
// vpdpbusd (|q_w| times q_a with q_w's sign: the same exact int32 lanes as maddubs + madd). The
// f32 operations are the AVX2 twin's in its order, so the results are its bits.
SMELT_VBMI2 inline __m256 MaskBlockSums(__m256i q, const uint8_t* act_qs) {
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act_qs));
  return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(q), _mm256_sign_epi8(a, q)));
}

template <int rows>
SMELT_VBMI2 inline void MaskBlockTerms512(const uint8_t* masks, int64_t b, const uint8_t** codes, const uint8_t* y,
                                          size_t stride, __m256* acc) {
  PrefetchAhead<64>(*codes);
  if (b % 16 == 0) PrefetchAhead<64>(masks + 4 * b, MaskPrefetchDistance());
  const uint32_t word = SparseMaskWord(masks, b);
  const __m256i q = _mm256_maskz_expandloadu_epi8(word, *codes);
  *codes += __builtin_popcount(word);
  for (int k = 0; k < rows; ++k) {
    const uint8_t* yk = y + k * stride + b * sizeof(BlockQ8_0);
    fp16_t d;
    std::memcpy(&d, yk, sizeof d);
    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(d)), MaskBlockSums(q, yk + offsetof(BlockQ8_0, qs)), acc[k]);
  }
}

template <int Cap, int rows>
SMELT_VBMI2 void DotSparseMaskRows512(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  const SparseMaskRowView r = ViewSparseMaskRow(w_row, n, Cap);
  const uint8_t *masks = r.masks, *c = r.codes, *end = r.end;
  const int64_t blocks = r.blocks;
  const auto* y = static_cast<const uint8_t*>(a);
  __m256 acc0[rows], acc1[rows];
  for (int k = 0; k < rows; ++k) acc0[k] = acc1[k] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < blocks && c + 64 <= end; b += 2) {  // a block reads at most 32 codes ahead
    MaskBlockTerms512<rows>(masks, b, &c, y, stride, acc0);
    MaskBlockTerms512<rows>(masks, b + 1, &c, y, stride, acc1);
  }
  // vpexpandb from memory reads only the set bits' codes: the blocks are read in place up to the
  // row's last code, and only a row whose masks set more bits than its capacity reaches the copy.
  for (; b < blocks && c + __builtin_popcount(SparseMaskWord(masks, b)) <= end; ++b)
    MaskBlockTerms512<rows>(masks, b, &c, y, stride, acc0);
  if (b < blocks) {
    uint8_t tail[64] = {};  // fewer than 32 codes remain: set bits past the capacity read zeros
    std::memcpy(tail, c, (size_t)(end - c));
    const uint8_t* t = tail;
    for (; b < blocks; ++b) {
      MaskBlockTerms512<rows>(masks, b, &t, y, stride, acc0);
      t = std::min<const uint8_t*>(t, tail + 32);
    }
  }
  float d;
  std::memcpy(&d, w_row, sizeof d);
  for (int k = 0; k < rows; ++k) out[k] = d * HorizontalSum(_mm256_add_ps(acc0[k], acc1[k]));
}

// Bitmask rows of fp16 values against f32 activations (sp50_f16, sp70_f16): each block's values
// put in place by one vpexpandw from memory (reading only the set bits' values, so rows are read
// in place to their last value), widened to f32 and multiplied with the activations by two fused
// multiply-adds; d once at the end. Set bits past the row's capacity are dropped from the mask,
// so nothing past the row is read.
template <int Cap, int rows>
SMELT_VBMI2 void DotSparseMaskF16Rows512(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  const SparseMaskRowView r = ViewSparseMaskRow(w_row, n, Cap, 2);
  const uint8_t* c = r.codes;
  const float* y[rows];
  for (int k = 0; k < rows; ++k) y[k] = reinterpret_cast<const float*>(static_cast<const uint8_t*>(a) + k * stride);
  __m512 acc0[rows], acc1[rows];
  for (int k = 0; k < rows; ++k) acc0[k] = acc1[k] = _mm512_setzero_ps();
  for (int64_t b = 0; b < r.blocks; ++b) {
    uint32_t m = SparseMaskWord(r.masks, b);
    const int64_t left = (r.end - c) / 2;
    while (__builtin_popcount(m) > left) m &= ~(1u << (31 - __builtin_clz(m)));  // over capacity: the highest go
    PrefetchAhead<64>(c);
    if (b % 16 == 0) PrefetchAhead<64>(r.masks + 4 * b, MaskPrefetchDistance());
    const __m512i v = _mm512_maskz_expandloadu_epi16(m, c);
    c += 2 * __builtin_popcount(m);
    const __m512 w0 = _mm512_cvtph_ps(_mm512_castsi512_si256(v)), w1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
    for (int k = 0; k < rows; ++k) {
      acc0[k] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(y[k] + b * kQKSparseMask), acc0[k]);
      acc1[k] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(y[k] + b * kQKSparseMask + 16), acc1[k]);
    }
  }
  float d;
  std::memcpy(&d, w_row, sizeof d);
  for (int k = 0; k < rows; ++k) out[k] = d * _mm512_reduce_add_ps(_mm512_add_ps(acc0[k], acc1[k]));
}

// Bitmask rows against i8_pc activations (sp50_w8a8, sp70_w8a8): two blocks' codes put in
// place by one 64-byte vpexpandb from memory, multiplied with the activation codes by one
// vpdpbusd (|q_w| against q_a negated where q_w < 0, as DotW8A8_512), int32 over the whole row and
// one f32 step at the end. The integer sum is exact, so the result is the AVX2 twin's and the
// reference's bits. `lanes` masks the activation load of a last odd block to its 32 codes.
template <int rows>
SMELT_VBMI2 inline void MaskPairTermsI8(const uint8_t* masks, int64_t b, uint64_t mask, const uint8_t** codes,
                                        const uint8_t* const* y, __mmask64 lanes, __m512i* acc) {
  PrefetchAhead<64>(*codes);
  if (b % 16 == 0) PrefetchAhead<64>(masks + 4 * b, MaskPrefetchDistance());
  const __m512i q = _mm512_maskz_expandloadu_epi8(mask, *codes);
  *codes += __builtin_popcountll(mask);
  const __mmask64 negative = _mm512_movepi8_mask(q);
  const __m512i magnitude = _mm512_abs_epi8(q);
  for (int k = 0; k < rows; ++k) {
    const __m512i a = _mm512_maskz_loadu_epi8(lanes, y[k] + b * kQKSparseMask);
    acc[k] = _mm512_dpbusd_epi32(acc[k], magnitude, _mm512_mask_sub_epi8(a, negative, _mm512_setzero_si512(), a));
  }
}

inline uint64_t MaskPair(const uint8_t* masks, int64_t b) {
  uint64_t m;
  std::memcpy(&m, masks + 4 * b, sizeof m);
  return m;
}

template <int Cap, int rows>
SMELT_VBMI2 void DotSparseMaskW8A8Rows512(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  const SparseMaskRowView r = ViewSparseMaskRow(w_row, n, Cap);
  const uint8_t *masks = r.masks, *c = r.codes, *end = r.end;
  const int64_t blocks = r.blocks;
  const uint8_t* y[rows];
  for (int k = 0; k < rows; ++k) y[k] = static_cast<const uint8_t*>(a) + k * stride + sizeof(RowHeaderI8);
  __m512i acc0[rows], acc1[rows];
  for (int k = 0; k < rows; ++k) acc0[k] = acc1[k] = _mm512_setzero_si512();
  constexpr __mmask64 kAll64 = ~0ULL;
  // vpexpandb from memory reads only as many bytes as the mask has set bits, so a pair may be
  // read in place up to the row's last code: only a row whose masks set more bits than its
  // capacity (which from_float never writes) reaches the zero-padded copy below.
  int64_t b = 0;
  for (; b + 3 < blocks; b += 4) {
    const uint64_t m0 = MaskPair(masks, b), m1 = MaskPair(masks, b + 2);
    if (c + __builtin_popcountll(m0) + __builtin_popcountll(m1) > end) break;
    MaskPairTermsI8<rows>(masks, b, m0, &c, y, kAll64, acc0);
    MaskPairTermsI8<rows>(masks, b + 2, m1, &c, y, kAll64, acc1);
  }
  for (; b + 1 < blocks; b += 2) {
    const uint64_t m = MaskPair(masks, b);
    if (c + __builtin_popcountll(m) > end) break;
    MaskPairTermsI8<rows>(masks, b, m, &c, y, kAll64, acc0);
  }
  if (b + 1 == blocks) {
    const uint32_t m = SparseMaskWord(masks, b);
    if (c + __builtin_popcount(m) <= end) MaskPairTermsI8<rows>(masks, b++, m, &c, y, 0xFFFFFFFFULL, acc1);
  }
  if (b < blocks) {
    // Fewer than 128 codes remain: a zero-padded copy of them, read up to 64 bytes past its end.
    uint8_t tail[192] = {};
    std::memcpy(tail, c, (size_t)(end - c));
    const uint8_t* t = tail;
    for (; b + 1 < blocks; b += 2) {
      MaskPairTermsI8<rows>(masks, b, MaskPair(masks, b), &t, y, kAll64, acc0);
      t = std::min<const uint8_t*>(t, tail + 128);  // past the codes: reads stay on the zeros
    }
    if (b < blocks) MaskPairTermsI8<rows>(masks, b, SparseMaskWord(masks, b), &t, y, 0xFFFFFFFFULL, acc1);
  }
  float d;
  std::memcpy(&d, w_row, sizeof d);
  for (int k = 0; k < rows; ++k) {
    const int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(acc0[k], acc1[k]));
    out[k] = (float)sum * (d * ViewI8Row(static_cast<const uint8_t*>(a) + k * stride).d);
  }
}

// sp70_w4a8 · i8_pc (formats/sparse_mask.h), as kernels/sparse_w4.h walks it: each group's
// activations packed by one vpcompressb (zeros above the packed ones) and stored at the running
// count; per 64 packed activations their chunk of codes (kernels/sparse_w4_avx512.h), then |q| times q_a with q's sign in int16 pairs (|q| ≤ 8: no
// saturation) and one vpdpwssd with the four runs' multipliers (run i of the step in 128-bit lane
// i, one byte shuffle of the four bytes). The one f32 step is the reference's, (float) Σ ·
// (d_w·d_a), so the result is its bits.
namespace w4mask {

#define SMELT_SPARSE_W4_TARGET SMELT_VBMI2
#include "kernels/sparse_w4_walk_body.h"
#undef SMELT_SPARSE_W4_TARGET

template <int rows>
SMELT_VBMI2 void DotRows(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  const SparseMaskW4RowView r = ViewSparseMaskW4Row(w_row, n, kSp70W4Cap);
  sparse_w4::PrefetchRowAhead(w_row, n);
  const uint8_t* y[rows];
  sparse_w4::ActivationCodes<rows>(a, stride, y);
  // Word j of 128-bit lane i: byte i of the four multipliers (zero-extended).
  const __m512i run_of_lane = _mm512_set_epi64(0x8003800380038003LL, 0x8003800380038003LL, 0x8002800280028002LL,
                                               0x8002800280028002LL, 0x8001800180018001LL, 0x8001800180018001LL,
                                               (long long)0x8000800080008000ULL, (long long)0x8000800080008000ULL);
  alignas(64) int8_t packed[rows][sparse_w4::kPackedBytes];
  int64_t first = 0;  // the stored weight of the next step's first packed activation
  int64_t sum[rows] = {};
  __m512i acc[rows];
  auto step = [&](int64_t j, int64_t lanes) SMELT_VBMI2 {  // packed[.][j ..] against weights first ..
    const int64_t valid = sparse_w4::LanesWithCodes(r, first, lanes);
    if (valid > 0) {
      const __mmask64 used = valid >= 64 ? ~0ULL : (1ULL << valid) - 1;
      const __m512i q = sparse_w4::Codes64(r, first);
      const __mmask64 negative = _mm512_movepi8_mask(q);
      const __m512i magnitude = _mm512_abs_epi8(q);
      const __m512i scale = _mm512_shuffle_epi8(_mm512_set1_epi32((int)sparse_w4::RunMultipliers(r, first)), run_of_lane);
      for (int k = 0; k < rows; ++k) {
        const __m512i act = _mm512_maskz_loadu_epi8(used, packed[k] + j);
        const __m512i pairs = _mm512_maddubs_epi16(magnitude, _mm512_mask_sub_epi8(act, negative, _mm512_setzero_si512(), act));
        acc[k] = _mm512_dpwssd_epi32(acc[k], pairs, scale);
      }
    }
    first += lanes;
  };
  for (int k = 0; k < rows; ++k) acc[k] = _mm512_setzero_si512();
  auto pack = [&](int64_t g, uint64_t m, int64_t at) SMELT_VBMI2 {
    for (int k = 0; k < rows; ++k)
      _mm512_storeu_si512(packed[k] + at, _mm512_maskz_compress_epi8(m, _mm512_loadu_si512(y[k] + 64 * g)));
  };
  auto window_end = [&](int64_t j, int64_t have) SMELT_VBMI2 {
    for (int k = 0; k < rows; ++k) {
      sum[k] += _mm512_reduce_add_epi32(acc[k]);
      acc[k] = _mm512_setzero_si512();
      if (j > 0 && j < have) _mm512_storeu_si512(packed[k], _mm512_loadu_si512(packed[k] + j));  // j ≥ 64: no overlap
    }
  };
  WalkRow<64>(r, pack, step, window_end);
  sparse_w4::FinishRows<rows>(r, sum, a, stride, out);
}

}  // namespace w4mask

// s24_w4a8 · i8_pc (formats/sparse24.h): a whole block of 128 per step. The 32 code bytes, read
// twice into one register, become the 64 slots' codes times 16 in one Galois-field affine step
// (the low nibbles shifted up in the first half, the high nibbles kept in the second: a
// two's-complement nibble in the high half of a byte is 16·q as an int8). vpmultishiftqb spreads
// the 16 index bytes, read twice, to one 2-bit position per byte and one ternary-logic step adds
// each slot's group offset (kernels/s24w4_avx512.h); two vpermb gather the slots' activations
// from the block's 128 activation bytes (the odd lanes from the upper 64, merged under a fixed
// mask), flipped to unsigned (q_a + 128), and one vpdpbusd gives each 4-byte lane its exact
// Σ (q_a + 128)·16q. The lanes alternate between the block's halves, so one in-lane byte shuffle
// of the two bf16 scales widens them to f32 in place, and one fused multiply-add per block
// accumulates (two accumulators, alternate blocks). At the end Σ/16 − 128·c takes the unsigned
// offset off with the row header.
struct S24W4Constants {
  s24w4::Tables tables;
  __m512i times16, flip, scale_ctl;
};
constexpr __mmask64 kS24W4HighHalf = 0xF0F0F0F0F0F0F0F0ULL;  // the odd 4-byte lanes: slots of weights 64..127

// One block's terms of W weight rows (blocks w_stride bytes apart) against A activation rows
// (y[k]: the block's 128 codes) into acc[w][k].
template <int W, int A>
SMELT_VBMI inline void S24W4BlockTerms(const S24W4Constants& k4, const uint8_t* blk, size_t w_stride,
                                       const uint8_t* const* y, __m512 (*acc)[A]) {
  // The activations flipped to unsigned before the gather where several weight rows share them,
  // else the gathered bytes (the same bytes either way).
  constexpr bool kFlipFirst = W > 1;
  __m512i lo[A], hi[A];
  for (int k = 0; k < A; ++k) {
    lo[k] = _mm512_loadu_si512(y[k]), hi[k] = _mm512_loadu_si512(y[k] + 64);
    if constexpr (kFlipFirst) lo[k] = _mm512_xor_si512(lo[k], k4.flip), hi[k] = _mm512_xor_si512(hi[k], k4.flip);
  }
  for (int r = 0; r < W; ++r, blk += w_stride) {
    PrefetchAhead<64>(blk);
    const __m512i w = s24w4::Codes(blk, k4.times16);
    const __m512i pos = s24w4::Positions(k4.tables, blk);
    uint32_t dd;
    std::memcpy(&dd, blk, sizeof dd);
    const __m512 scale = _mm512_castsi512_ps(_mm512_shuffle_epi8(_mm512_set1_epi32((int)dd), k4.scale_ctl));
    for (int k = 0; k < A; ++k) {
      __m512i g = _mm512_mask_permutexvar_epi8(_mm512_permutexvar_epi8(pos, lo[k]), kS24W4HighHalf, pos, hi[k]);
      if constexpr (!kFlipFirst) g = _mm512_xor_si512(g, k4.flip);
      acc[r][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), g, w)), scale, acc[r][k]);
    }
  }
}

// A row's two accumulators (even and odd blocks) summed, in one fixed order for every form.
SMELT_VBMI inline float S24W4Sum(__m512 even, __m512 odd) {
  const __m512 s = _mm512_add_ps(even, odd);
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 pair = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}

// W weight rows (w_stride bytes apart) times A activation rows (a_stride bytes apart) into
// out[w·A + k]. Every (row, activation) pair is summed in the same order whatever W and A are, so
// every form gives the single-row kernel's bits.
template <int W, int A>
SMELT_VBMI void DotS24W4A8Block512(const void* w_row, size_t w_stride, const void* a, size_t a_stride, int64_t n,
                                   float* out) {
  const S24W4Constants k4{s24w4::LoadTables(), s24w4::Times16Matrix(), _mm512_set1_epi8((char)0x80),
                          _mm512_set1_epi64(0x0302808001008080LL)};  // even lanes d[0], odd lanes d[1]
  const auto* p = static_cast<const uint8_t*>(w_row);
  const uint8_t* blk = p + sizeof(RowHeaderS24W4);
  const uint8_t* y[A];
  for (int k = 0; k < A; ++k) y[k] = static_cast<const uint8_t*>(a) + k * a_stride + sizeof(RowHeaderI8);
  __m512 acc0[W][A], acc1[W][A];
  for (int r = 0; r < W; ++r)
    for (int k = 0; k < A; ++k) acc0[r][k] = acc1[r][k] = _mm512_setzero_ps();
  const int64_t blocks = n / kQKS24W4;
  const uint8_t* x[A];
  int64_t i = 0;
  for (; i + 1 < blocks; i += 2, blk += 2 * sizeof(BlockS24W4)) {
    for (int k = 0; k < A; ++k) x[k] = y[k] + i * kQKS24W4;
    S24W4BlockTerms<W, A>(k4, blk, w_stride, x, acc0);
    for (int k = 0; k < A; ++k) x[k] += kQKS24W4;
    S24W4BlockTerms<W, A>(k4, blk + sizeof(BlockS24W4), w_stride, x, acc1);
  }
  if (i < blocks) {
    for (int k = 0; k < A; ++k) x[k] = y[k] + i * kQKS24W4;
    S24W4BlockTerms<W, A>(k4, blk, w_stride, x, acc0);
  }
  for (int r = 0; r < W; ++r) {
    float c;
    std::memcpy(&c, p + r * w_stride, sizeof c);
    for (int k = 0; k < A; ++k) {
      const float total = S24W4Sum(acc0[r][k], acc1[r][k]) / 16.0f;
      out[r * A + k] = (total - 128.0f * c) * ViewI8Row(static_cast<const uint8_t*>(a) + k * a_stride).d;
    }
  }
}

SMELT_VBMI float DotS24W4A8_512(const void* w_row, const void* a_row, int64_t n) {
  float out;
  DotS24W4A8Block512<1, 1>(w_row, 0, a_row, 0, n, &out);
  return out;
}
SMELT_VBMI void DotS24W4A8x4_512(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  DotS24W4A8Block512<1, 4>(w_row, 0, a, stride, n, out);
}
SMELT_VBMI void DotS24W4A8Rows4_512(const void* w_rows, size_t w_stride, const void* a_row, int64_t n, float* out) {
  DotS24W4A8Block512<4, 1>(w_rows, w_stride, a_row, 0, n, out);
}

// w8a8 · i8_pc (formats/per_channel.h): the AVX2 twin's exact int32 sum (qdot_avx2.cc DotW8A8), 64
// codes per vpdpbusd (|q_w| against q_a negated where q_w < 0), then the same one f32 step.
SMELT_VNNI512 float DotW8A8_512(const void* w_row, const void* a_row, int64_t n) {
  const I8RowView wr = ViewI8Row(w_row), ar = ViewI8Row(a_row);
  const uint8_t *qw = wr.codes, *qa = ar.codes;
  __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    PrefetchAhead<64>(qw + i);
    const __m512i w = _mm512_loadu_si512(qw + i), a = _mm512_loadu_si512(qa + i);
    const __m512i signed_a = _mm512_mask_sub_epi8(a, _mm512_movepi8_mask(w), _mm512_setzero_si512(), a);
    if ((i / 64) % 2 == 0) {
      acc0 = _mm512_dpbusd_epi32(acc0, _mm512_abs_epi8(w), signed_a);
    } else {
      acc1 = _mm512_dpbusd_epi32(acc1, _mm512_abs_epi8(w), signed_a);
    }
  }
  int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
  for (; i < n; ++i) sum += (int8_t)qw[i] * (int8_t)qa[i];
  return (float)sum * (wr.d * ar.d);
}

// ---- Q3_K against Q8_K: the AVX2 twin's integers, 64 codes per step ----
// Both halves of a super-block (values 128h + 32k + l, h = 0, 1) share one register: per step k
// the halves' codes meet their activations, each 128-bit quarter scaled by its sub-block's scale
// (one byte shuffle of the 16 scales), and at the end the two halves' int32 lanes are added: the
// AVX2 twin's eight exact lane sums, then its f32 steps (kernels/kquant_row_avx2.h shares the
// scale decoding), so the results are its bits. Decode on the 220M synth model, 1 thread, against
// SMELT_MAX_ISA=avx2 alternated: Q3_K 113-115 -> 123 t/s. The same form for Q2_K was slower than
// its AVX2 twin (154-155 against 158-162 t/s) and is not kept.

// Step k: quarter 0 of the register takes s[2k], 1 s[2k + 1], 2 s[8 + 2k], 3 s[9 + 2k]. The 16
// scales are laid out once per super-block as (s[0..7], s[0..7], s[8..15], s[8..15]), one per
// 128-bit quarter, so each step picks its word with one byte shuffle: byte 2i, 2i + 1 of the
// quarter, i = 2k (quarters 0, 2) or 2k + 1 (quarters 1, 3).
constexpr std::array<std::array<uint8_t, 64>, 4> kScaleShuffles = [] {
  std::array<std::array<uint8_t, 64>, 4> t{};
  for (int k = 0; k < 4; ++k)
    for (int b = 0; b < 64; ++b) {
      const int quarter = b / 16, i = 2 * k + quarter % 2;
      t[(size_t)k][(size_t)b] = (uint8_t)(2 * i + b % 2);
    }
  return t;
}();

SMELT_AVX512 inline __m512i JoinHalves(const uint8_t* lo, const uint8_t* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi)), 1);
}
// Bits `shift`.. of every byte, masked by `mask` (bytes shifted in 16-bit lanes, then masked).
SMELT_AVX512 inline __m512i BitsAt512(__m512i v, int shift, int mask) {
  return _mm512_and_si512(_mm512_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm512_set1_epi8((char)mask));
}
// s16: the 16 scales as int16 in order; returns them laid out per quarter (above).
SMELT_AVX512 inline __m512i ScaleQuarters(__m256i s16) {
  const __m512i z = _mm512_castsi256_si512(s16);
  return _mm512_shuffle_i64x2(z, z, 0x50);  // 128-bit quarters 0, 0, 1, 1
}
SMELT_AVX512 inline __m512i ScalesOfStep(__m512i quarters, int k) {
  return _mm512_shuffle_epi8(quarters, _mm512_loadu_si512(kScaleShuffles[(size_t)k].data()));
}
// The AVX2 twin's eight lane sums: the two halves' int32 lanes added (exact).
SMELT_AVX512 inline __m256 HalvesAsFloats(__m512i sums) {
  return _mm256_cvtepi32_ps(_mm256_add_epi32(_mm512_castsi512_si256(sums), _mm512_extracti64x4_epi64(sums, 1)));
}
SMELT_AVX512 inline float F32At(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// W weight rows (w + r·w_stride) against one Q8_K row into out[r]: each super-block's activations
// joined once for the W rows, per row the same steps (W = 1 is the single-row kernel; four rows
// per call when decoding give its bits and keep four weight streams in flight).
template <int W>
SMELT_AVX512 void DotQ3_K_512Rows(const void* w, size_t w_stride, const void* a, int64_t n, float* out) {
  __m256 acc[W];
  for (__m256& v : acc) v = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const uint8_t* y = static_cast<const uint8_t*>(a) + i * sizeof(BlockQ8_K);
    const uint8_t* yq = y + offsetof(BlockQ8_K, qs);
    __m512i ya[4];
    for (int k = 0; k < 4; ++k) ya[k] = JoinHalves(yq + 32 * k, yq + 128 + 32 * k);
    for (int r = 0; r < W; ++r) {
      const uint8_t* x = static_cast<const uint8_t*>(w) + r * w_stride + i * sizeof(BlockQ3_K);
      PrefetchAhead<sizeof(BlockQ3_K)>(x);
      const __m512i s16 = ScaleQuarters(kquant_row::Q3Scales(x + offsetof(BlockQ3_K, scales)));
      // hmask bit k for the first half, bit 4 + k for the second (code = low two bits − 4 where clear).
      const __m256i hmask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + offsetof(BlockQ3_K, hmask)));
      const __m512i hm = _mm512_inserti64x4(_mm512_castsi256_si512(hmask), _mm256_srli_epi16(hmask, 4), 1);
      const __m512i q = _mm512_loadu_si512(x + offsetof(BlockQ3_K, qs));
      __m512i sums = _mm512_setzero_si512();
      for (int k = 0; k < 4; ++k) {
        const __m512i minus4 = _mm512_slli_epi16(_mm512_xor_si512(BitsAt512(hm, k, 1), _mm512_set1_epi8(1)), 2);
        const __m512i products =
            _mm512_sub_epi16(_mm512_maddubs_epi16(BitsAt512(q, 2 * k, 3), ya[k]), _mm512_maddubs_epi16(minus4, ya[k]));
        sums = _mm512_add_epi32(sums, _mm512_madd_epi16(products, ScalesOfStep(s16, k)));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(F32At(y) * HalfF16(x + offsetof(BlockQ3_K, d))), HalvesAsFloats(sums), acc[r]);
    }
  }
  for (int r = 0; r < W; ++r) out[r] = HorizontalSum(acc[r]);
}

// Q6_K, the AVX2 twin's sums (qdot_avx2.cc DotQ6_KBlock) 64 codes per register: a half
// super-block's 64 ql bytes give sub-blocks 8h..8h+3 (low nibbles) and 8h+4..8h+7 (high), its 32
// qh bytes (and the same shifted by 2) their fifth and sixth bits; each register meets 64
// contiguous activation bytes and one scale per 128-bit quarter. The int32 lanes' halves added
// give the AVX2 twin's eight lane sums exactly, and the f32 steps are its own, so the bits are its.
// W weight rows (w + r·w_stride) against one Q8_K row into out[r] (W = 1: the single-row kernel).
template <int W>
SMELT_AVX512 void DotQ6_K_512Rows(const void* w, size_t w_stride, const void* a, int64_t n, float* out) {
  // Scale index of every int16 lane for the four steps (sub-blocks 4m .. 4m + 3, one per quarter).
  __m512i step_scales[4];
  for (int m = 0; m < 4; ++m)
    step_scales[m] = _mm512_add_epi16(_mm512_set1_epi16((int16_t)(4 * m)),
                                      _mm512_setr_epi64(0, 0, 0x0001000100010001LL, 0x0001000100010001LL,
                                                        0x0002000200020002LL, 0x0002000200020002LL,
                                                        0x0003000300030003LL, 0x0003000300030003LL));
  __m256 acc[W];
  float offsets[W];
  for (int r = 0; r < W; ++r) acc[r] = _mm256_setzero_ps(), offsets[r] = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const uint8_t* y = static_cast<const uint8_t*>(a) + i * sizeof(BlockQ8_K);
    const uint8_t* yq = y + offsetof(BlockQ8_K, qs);
    const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + offsetof(BlockQ8_K, bsums)));
    for (int r = 0; r < W; ++r) {
      const uint8_t* x = static_cast<const uint8_t*>(w) + r * w_stride + i * sizeof(BlockQ6_K);
      PrefetchAhead<sizeof(BlockQ6_K)>(x);
      const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + offsetof(BlockQ6_K, scales))));
      const __m512i scales = _mm512_castsi256_si512(s16);
      __m512i sums = _mm512_setzero_si512();
      for (int h = 0; h < 2; ++h) {
        const __m512i ql = _mm512_loadu_si512(x + offsetof(BlockQ6_K, ql) + 64 * h);
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + offsetof(BlockQ6_K, qh) + 32 * h));
        const __m512i qh2 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
        for (int part = 0; part < 2; ++part) {  // low nibbles with qh bits 0-1 / 2-3, high with 4-5 / 6-7
          const __m512i code = _mm512_or_si512(BitsAt512(ql, 4 * part, 0x0F), _mm512_slli_epi16(BitsAt512(qh2, 4 * part, 3), 4));
          const int m = 2 * h + part;
          const __m512i act = _mm512_loadu_si512(yq + 64 * m);
          const __m512i sc = _mm512_permutexvar_epi16(step_scales[m], scales);
          sums = _mm512_add_epi32(sums, _mm512_madd_epi16(_mm512_maddubs_epi16(code, act), sc));
        }
      }
      const float d = F32At(y) * HalfF16(x + offsetof(BlockQ6_K, d));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), HalvesAsFloats(sums), acc[r]);
      // Σ_j bsums[j]·scale_j, exact in int32 (the AVX2 twin sums it in scalar code).
      const int32_t weighted = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(_mm256_madd_epi16(bsums, s16)));
      offsets[r] += d * (float)(32 * weighted);
    }
  }
  for (int r = 0; r < W; ++r) out[r] = HorizontalSum(acc[r]) - offsets[r];
}

}  // namespace

QDotFn Avx512QDot(DType weight) {
  switch (weight) {
    case DType::kF16: return DotWidened512<F16Row, F16Row>;
    case DType::kBF16: return DotWidened512<Bf16Row, Bf16Row>;
    case DType::kQ3_K: return OneWeightRow<DotQ3_K_512Rows<1>>;
    case DType::kQ6_K: return OneWeightRow<DotQ6_K_512Rows<1>>;
    case DType::kSP50_Q8: return CpuHasAvx512Vbmi2() ? OneRow<DotSparseMaskRows512<16, 1>> : nullptr;
    case DType::kSP70_Q8: return CpuHasAvx512Vbmi2() ? OneRow<DotSparseMaskRows512<10, 1>> : nullptr;
    case DType::kW8A8: return CpuHasAvx512F() && CpuHasAvx512Vnni() ? DotW8A8_512 : nullptr;
    case DType::kI8_PC: return DotWidened512<I8PCRow, F32Row>;
    case DType::kSP50_W8A8: return CpuHasAvx512Vbmi2() ? OneRow<DotSparseMaskW8A8Rows512<16, 1>> : nullptr;
    case DType::kSP70_W8A8: return CpuHasAvx512Vbmi2() ? OneRow<DotSparseMaskW8A8Rows512<10, 1>> : nullptr;
    case DType::kS24_W4A8: return CpuHasAvx512Vbmi() ? DotS24W4A8_512 : nullptr;
    case DType::kSP50_F16: return CpuHasAvx512Vbmi2() ? OneRow<DotSparseMaskF16Rows512<16, 1>> : nullptr;
    case DType::kSP70_F16: return CpuHasAvx512Vbmi2() ? OneRow<DotSparseMaskF16Rows512<10, 1>> : nullptr;
    case DType::kSP70_W4A8: return CpuHasAvx512Vbmi2() ? OneRow<w4mask::DotRows<1>> : nullptr;
    default: return table4::Avx512Dot(weight);
  }
}

QDotRows2x4Fn Avx512QDotRows2x4(DType weight) {
  switch (weight) {
    case DType::kF16: return DotWidened512Block<F16Row, F16Row, 2, 4>;
    case DType::kBF16: return DotWidened512Block<Bf16Row, Bf16Row, 2, 4>;
    case DType::kI8_PC: return DotWidened512Block<I8PCRow, F32Row, 2, 4>;
    default: return nullptr;
  }
}
QDotRows4Fn Avx512QDotRows4(DType weight) {
  switch (weight) {
    case DType::kS24_W4A8: return CpuHasAvx512Vbmi() ? DotS24W4A8Rows4_512 : nullptr;
    case DType::kF16: return DotWidened512Rows4<F16Row, F16Row>;
    case DType::kBF16: return DotWidened512Rows4<Bf16Row, Bf16Row>;
    case DType::kI8_PC: return DotWidened512Rows4<I8PCRow, F32Row>;
    case DType::kQ3_K: return DotQ3_K_512Rows<4>;
    case DType::kQ6_K: return DotQ6_K_512Rows<4>;
    default: return table4::Avx512DotRows4(weight);
  }
}

QDotX4Fn Avx512QDotX4(DType weight) {
  switch (weight) {
    case DType::kF16: return DotWidened512x4<F16Row, F16Row>;
    case DType::kBF16: return DotWidened512x4<Bf16Row, Bf16Row>;
    case DType::kI8_PC: return DotWidened512x4<I8PCRow, F32Row>;
    case DType::kSP50_Q8: return CpuHasAvx512Vbmi2() ? DotSparseMaskRows512<16, 4> : nullptr;
    case DType::kSP70_Q8: return CpuHasAvx512Vbmi2() ? DotSparseMaskRows512<10, 4> : nullptr;
    case DType::kSP50_W8A8: return CpuHasAvx512Vbmi2() ? DotSparseMaskW8A8Rows512<16, 4> : nullptr;
    case DType::kSP70_W8A8: return CpuHasAvx512Vbmi2() ? DotSparseMaskW8A8Rows512<10, 4> : nullptr;
    case DType::kS24_W4A8: return CpuHasAvx512Vbmi() ? DotS24W4A8x4_512 : nullptr;
    case DType::kSP50_F16: return CpuHasAvx512Vbmi2() ? DotSparseMaskF16Rows512<16, 4> : nullptr;
    case DType::kSP70_F16: return CpuHasAvx512Vbmi2() ? DotSparseMaskF16Rows512<10, 4> : nullptr;
    case DType::kSP70_W4A8: return CpuHasAvx512Vbmi2() ? w4mask::DotRows<4> : nullptr;
    default: return table4::Avx512DotX4(weight);
  }
}

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
QDotFn Avx512QDot(DType) { return nullptr; }
QDotX4Fn Avx512QDotX4(DType) { return nullptr; }
QDotRows2x4Fn Avx512QDotRows2x4(DType) { return nullptr; }
QDotRows4Fn Avx512QDotRows4(DType) { return nullptr; }
}  // namespace smelt

#endif

#undef SMELT_AVX512
#undef SMELT_VBMI2
#undef SMELT_VBMI
#undef SMELT_VNNI512
