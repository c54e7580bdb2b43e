// The AVX-512 twin of the scalar Q8_0 activation block encoder (formats/activation.cc): max |x| by
// vmaxps (exact), the same scale 127 / amax, each product rounded to the nearest integer with ties
// to even by vcvtps2dq (what the scalar NearestInt's 1.5·2^23 addition does for |v| < 2^22), the
// same clamp to ±127. Blocks with a NaN or infinity go back to the scalar encoder, whose max
// skips NaNs. Also the Q8_K block encoder's twin (below). Only these functions carry the target
// attribute.
#include "formats/activation_simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/gcc_avx512_warnings_off.h"

namespace smelt {
namespace {

__attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl,avx512bw"))) bool EncodeQ8BlockImpl(const float* x, int8_t* q,
                                                                                              float* amax_out) {
  const __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
  const __m512 inf = _mm512_set1_ps(INFINITY);
  const __m512 alo = _mm512_abs_ps(lo), ahi = _mm512_abs_ps(hi);
  // Not finite: |x| is NaN (unordered) or infinity.
  if (_mm512_cmp_ps_mask(alo, inf, _CMP_NLT_UQ) | _mm512_cmp_ps_mask(ahi, inf, _CMP_NLT_UQ)) return false;
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(alo, ahi));
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  const __m512 scale = _mm512_set1_ps(id);
  const __m512i top = _mm512_set1_epi32(127), bottom = _mm512_set1_epi32(-127);
  const __m512i qlo = _mm512_max_epi32(bottom, _mm512_min_epi32(top, _mm512_cvtps_epi32(_mm512_mul_ps(lo, scale))));
  const __m512i qhi = _mm512_max_epi32(bottom, _mm512_min_epi32(top, _mm512_cvtps_epi32(_mm512_mul_ps(hi, scale))));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(qlo));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtepi32_epi8(qhi));
  *amax_out = amax;
  return true;
}

// QuantizeRowQ8_KRef's block: the first value of largest magnitude (with its sign) found by
// comparing every |x| with their maximum, iscale = -127 / that value, codes rounded to nearest even
// (vcvtps2dq, as NearestInt) and clamped above at 127 only, as the reference does; the sums of 16.
__attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl,avx512bw"))) bool EncodeQ8KBlockImpl(const float* x,
                                                                                               BlockQ8_K* y) {
  constexpr int kChunks = kQK_K / 16;
  const __m512 inf = _mm512_set1_ps(INFINITY);
  __m512 best = _mm512_setzero_ps();
  for (int c = 0; c < kChunks; ++c) {
    const __m512 a = _mm512_abs_ps(_mm512_loadu_ps(x + 16 * c));
    if (_mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ)) return false;  // NaN or infinity: the scalar encoder
    best = _mm512_max_ps(best, a);
  }
  const float amax = _mm512_reduce_max_ps(best);
  if (amax == 0.0f) {
    std::memset(y, 0, sizeof *y);  // d, codes and sums all 0, as the reference writes them
    return true;
  }
  float max = 0.0f;
  const __m512 target = _mm512_set1_ps(amax);
  for (int c = 0; c < kChunks; ++c) {
    const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)), target, _CMP_EQ_OQ);
    if (hit) {
      max = x[16 * c + __builtin_ctz(hit)];
      break;
    }
  }
  const float iscale = -127.0f / max;
  if (!std::isfinite(iscale)) return false;  // a subnormal maximum: the reference's wrapped codes
  const __m512 scale = _mm512_set1_ps(iscale);
  const __m512i top = _mm512_set1_epi32(127);
  for (int c = 0; c < kChunks; ++c) {
    const __m512i v = _mm512_min_epi32(top, _mm512_cvtps_epi32(_mm512_mul_ps(scale, _mm512_loadu_ps(x + 16 * c))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y->qs + 16 * c), _mm512_cvtepi32_epi8(v));
    y->bsums[c] = (int16_t)_mm512_reduce_add_epi32(v);
  }
  y->d = 1 / iscale;
  return true;
}

// QuantizeRowI8PC's row: max |x| by vmaxps, d = amax / 127 and its reciprocal as the scalar
// encoder takes them, each product rounded half away from zero as std::round does (the truncation
// plus one step where the exact remainder is at least one half), clamped to ±127.
__attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl,avx512bw"))) bool EncodeI8RowImpl(const float* x, void* row,
                                                                                            int64_t n) {
  const __m512 inf = _mm512_set1_ps(INFINITY);
  __m512 best = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 a = _mm512_abs_ps(_mm512_loadu_ps(x + i));
    if (_mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ)) return false;  // NaN or infinity: the scalar encoder
    best = _mm512_max_ps(best, a);
  }
  float amax = _mm512_reduce_max_ps(best);
  for (; i < n; ++i) {
    if (!std::isfinite(x[i])) return false;
    amax = std::max(amax, std::fabs(x[i]));
  }
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  if (!std::isfinite(id)) return false;
  std::memcpy(row, &d, sizeof d);
  auto* q = static_cast<int8_t*>(row) + sizeof d;
  const __m512 scale = _mm512_set1_ps(id), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512i top = _mm512_set1_epi32(127), bottom = _mm512_set1_epi32(-127);
  for (i = 0; i < n; i += 16) {
    const __mmask16 lanes = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, x + i), scale);
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), half, _CMP_GE_OQ);
    // One step away from zero: t + copysign(1, v).
    const __m512 step = _mm512_or_ps(one, _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
    const __m512 r = _mm512_mask_add_ps(t, up, t, step);
    const __m512i c = _mm512_max_epi32(bottom, _mm512_min_epi32(top, _mm512_cvttps_epi32(r)));
    _mm_mask_storeu_epi8(q + i, lanes, _mm512_cvtepi32_epi8(c));
  }
  return true;
}

}  // namespace

EncodeI8RowFn Avx512EncodeI8Row() { return EncodeI8RowImpl; }
EncodeQ8BlockFn Avx512EncodeQ8Block() { return EncodeQ8BlockImpl; }
EncodeQ8KBlockFn Avx512EncodeQ8KBlock() { return EncodeQ8KBlockImpl; }

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
EncodeQ8BlockFn Avx512EncodeQ8Block() { return nullptr; }
EncodeQ8KBlockFn Avx512EncodeQ8KBlock() { return nullptr; }
EncodeI8RowFn Avx512EncodeI8Row() { return nullptr; }
}  // namespace smelt

#endif
