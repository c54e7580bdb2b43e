// The AVX-512 twin of ReferenceAttendTile (kernels/attention.h): the same online-softmax step with
// each score a 16-wide fused dot product, the tile's exponentials 16 at a time (Cephes' expf
// polynomial, within 2 ulp of e^x), and the weighted value rows accumulated 16 dimensions per
// register with two partial sums per register (even and odd keys). It sums in another order than
// the reference and rounds exp differently, so the two agree within the bounds of
// FusedKernels.AttendTileTwinsMatchTheDoubleSum, not bit for bit. A query's result still depends
// only on its own keys.
//
// Only these functions carry the target attribute (dispatch: attention.cc).
#include "kernels/attention.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/gcc_avx512_warnings_off.h"

#define SMELT_AVX512 __attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl,avx512bw")))

namespace smelt {
namespace {

// e^x for x ≤ 0: x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two parts, as Cephes' expf), e^r by
// its polynomial (Cephes expf), then scaled by 2^n (vscalefps flushes results below the smallest
// float to 0, and x is clamped where that happens anyway).
SMELT_AVX512 inline __m512 ExpNonPositive(__m512 x) {
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

inline __mmask16 TailMask(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

SMELT_AVX512 void Avx512AttendTileImpl(const float* q, const float* k, const float* v, int64_t n, int64_t stride,
                                       int head_dim, float scale, OnlineSoftmax& s, float* acc) {
  alignas(64) float p[kAttnTile];
  float tile_max = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const float* kj = k + j * stride;
    __m512 dot = _mm512_setzero_ps();
    for (int d = 0; d < head_dim; d += 16) {
      const __mmask16 m = TailMask(head_dim - d);
      dot = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, kj + d), dot);
    }
    p[j] = _mm512_reduce_add_ps(dot) * scale;
    tile_max = std::max(tile_max, p[j]);
  }
  s.Raise(tile_max, acc, head_dim);
  __m512 sum = _mm512_setzero_ps();
  const __m512 m_new = _mm512_set1_ps(s.m);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = TailMask(n - j);
    const __m512 e = _mm512_maskz_mov_ps(m, ExpNonPositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + j), m_new)));
    _mm512_mask_storeu_ps(p + j, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  s.l += _mm512_reduce_add_ps(sum);
  // acc += Σ_j p_j·v_j, 64 dimensions at a time: 4 registers × (even keys, odd keys).
  for (int d0 = 0; d0 < head_dim; d0 += 64) {
    __m512 even[4], odd[4];
    __mmask16 mask[4];
    const int regs = (int)std::min<int64_t>(4, (head_dim - d0 + 15) / 16);
    for (int r = 0; r < regs; ++r) {
      mask[r] = TailMask(head_dim - d0 - 16 * r);
      even[r] = _mm512_maskz_loadu_ps(mask[r], acc + d0 + 16 * r);
      odd[r] = _mm512_setzero_ps();
    }
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
      const __m512 pe = _mm512_set1_ps(p[j]), po = _mm512_set1_ps(p[j + 1]);
      const float *ve = v + j * stride + d0, *vo = ve + stride;
      for (int r = 0; r < regs; ++r) {
        even[r] = _mm512_fmadd_ps(pe, _mm512_maskz_loadu_ps(mask[r], ve + 16 * r), even[r]);
        odd[r] = _mm512_fmadd_ps(po, _mm512_maskz_loadu_ps(mask[r], vo + 16 * r), odd[r]);
      }
    }
    if (j < n) {
      const __m512 pe = _mm512_set1_ps(p[j]);
      for (int r = 0; r < regs; ++r)
        even[r] = _mm512_fmadd_ps(pe, _mm512_maskz_loadu_ps(mask[r], v + j * stride + d0 + 16 * r), even[r]);
    }
    for (int r = 0; r < regs; ++r) _mm512_mask_storeu_ps(acc + d0 + 16 * r, mask[r], _mm512_add_ps(even[r], odd[r]));
  }
}

}  // namespace

AttendTileFn Avx512AttendTile() { return Avx512AttendTileImpl; }

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
AttendTileFn Avx512AttendTile() { return nullptr; }
}  // namespace smelt

#endif

#undef SMELT_AVX512
