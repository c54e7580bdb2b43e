// The AVX2 twin of the Q8_K activation block encoder (QuantizeRowQ8_KRef, formats/k_quants.h), for
// CPUs without AVX-512: the same steps as the AVX-512 twin (activation_avx512.cc) eight lanes at a
// time, the codes narrowed by saturating packs (they are within ±127, so the packs change nothing)
// and put back in order by one permute. Only these functions carry the target attribute.
#include "formats/activation_simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <cmath>
#include <cstring>

#define SMELT_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace smelt {
namespace {

SMELT_AVX2 inline __m256 Abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

SMELT_AVX2 bool EncodeQ8KBlockAvx2(const float* x, BlockQ8_K* y) {
  const __m256 inf = _mm256_set1_ps(INFINITY);
  __m256 best = _mm256_setzero_ps();
  for (int i = 0; i < kQK_K; i += 8) {
    const __m256 a = Abs8(_mm256_loadu_ps(x + i));
    if (_mm256_movemask_ps(_mm256_cmp_ps(a, inf, _CMP_NLT_UQ))) return false;  // NaN or infinity
    best = _mm256_max_ps(best, a);
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(best), _mm256_extractf128_ps(best, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float amax = _mm_cvtss_f32(m);
  if (amax == 0.0f) {
    std::memset(y, 0, sizeof *y);
    return true;
  }
  float max = 0.0f;
  const __m256 target = _mm256_set1_ps(amax);
  for (int i = 0; i < kQK_K; i += 8) {
    const int hit = _mm256_movemask_ps(_mm256_cmp_ps(Abs8(_mm256_loadu_ps(x + i)), target, _CMP_EQ_OQ));
    if (hit) {
      max = x[i + __builtin_ctz((unsigned)hit)];
      break;
    }
  }
  const float iscale = -127.0f / max;
  if (!std::isfinite(iscale)) return false;  // a subnormal maximum: the reference's wrapped codes
  const __m256 scale = _mm256_set1_ps(iscale);
  const __m256i top = _mm256_set1_epi32(127), order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int i = 0; i < kQK_K; i += 32) {
    __m256i v[4];
    for (int k = 0; k < 4; ++k)
      v[k] = _mm256_min_epi32(top, _mm256_cvtps_epi32(_mm256_mul_ps(scale, _mm256_loadu_ps(x + i + 8 * k))));
    for (int h = 0; h < 2; ++h) {  // the sums of 16: v[2h] and v[2h + 1]
      const __m256i s = _mm256_add_epi32(v[2 * h], v[2 * h + 1]);
      __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
      t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
      y->bsums[i / 16 + h] = (int16_t)_mm_cvtsi128_si32(t);
    }
    const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y->qs + i), _mm256_permutevar8x32_epi32(packed, order));
  }
  y->d = 1 / iscale;
  return true;
}

}  // namespace

EncodeQ8KBlockFn Avx2EncodeQ8KBlock() { return EncodeQ8KBlockAvx2; }

}  // namespace smelt

#else

namespace smelt {
EncodeQ8KBlockFn Avx2EncodeQ8KBlock() { return nullptr; }
}  // namespace smelt

#endif

#undef SMELT_AVX2
