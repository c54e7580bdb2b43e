// The AVX-512 twin of the scalar Q8_0 activation block encoder (formats/activation.cc): max |x| by
// vmaxps (exact), the same scale 127 / amax, each product rounded to the nearest integer with ties
// to even by vcvtps2dq (what the scalar NearestInt's 1.5·2^23 addition does for |v| < 2^22), the
// same clamp to ±127. Blocks with a NaN or infinity go back to the scalar encoder, whose max
// skips NaNs. Only these functions carry the target attribute.
#include "formats/activation_simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <cmath>

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

}  // namespace

EncodeQ8BlockFn Avx512EncodeQ8Block() { return EncodeQ8BlockImpl; }

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
EncodeQ8BlockFn Avx512EncodeQ8Block() { return nullptr; }
}  // namespace smelt

#endif
