#pragma once
// e^x for x ≤ 0, 16 lanes, for the AVX-512 twins (the attention tile's softmax, SwiGLU's sigmoid):
// x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two parts, as Cephes' expf), e^r by Cephes' expf
// polynomial (within 2 ulp of e^x), then scaled by 2^n (vscalefps flushes results below the
// smallest float to 0, and x is clamped where that happens anyway). Include only from a file whose
// callers carry AVX-512 target attributes (after <immintrin.h>).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

namespace smelt {

__attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl,avx512bw"))) inline __m512 ExpNonPositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  return _mm512_scalef_ps(_mm512_add_ps(p, _mm512_set1_ps(1.0f)), n);
}

}  // namespace smelt

#endif
