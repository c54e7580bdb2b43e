#pragma once
// The sum of a 256-bit register's eight floats, in the one order every twin that promises the AVX2
// row dots' bits uses: the two 128-bit halves added, then the upper pair onto the lower, then the
// last two lanes. Include after <immintrin.h>, from files whose callers carry AVX2 (or wider)
// target attributes.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

namespace smelt {

__attribute__((target("avx2,fma,f16c"))) inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace smelt

#endif
