// The AVX-512 twin of ReferenceAttendTile (kernels/attention.h): the same online-softmax step with
// each score a 16-wide fused dot product (16 keys at a time, their lanes summed together), the tile's exponentials 16 at a time (Cephes' expf
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
#include "kernels/exp_avx512.h"

#define SMELT_AVX512 __attribute__((target("avx2,fma,avx512f,avx512dq,avx512vl,avx512bw")))

namespace smelt {
namespace {

inline __mmask16 TailMask(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

// The 16 lane sums of a[0..15] in one register (lane j = Σ a[j]): pairs, then quads of
// registers folded by unpacks within 128-bit lanes, then across the four lanes.
SMELT_AVX512 inline __m512 SumsOf16(const __m512* a) {
  __m512 b[8], c[4];
  for (int i = 0; i < 8; ++i)  // lane L of b[i]: (a[2i] 0+2, a[2i+1] 0+2, a[2i] 1+3, a[2i+1] 1+3)
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {  // lane L of c[i]: the lane-L sums of a[4i .. 4i+3]
    const __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(b[2 * i]), _mm512_castps_pd(b[2 * i + 1]));
    const __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(b[2 * i]), _mm512_castps_pd(b[2 * i + 1]));
    c[i] = _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
  }
  const __m512 d0 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xDD));
  const __m512 d1 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], 0x88), _mm512_shuffle_f32x4(c[2], c[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(d0, d1, 0x88), _mm512_shuffle_f32x4(d0, d1, 0xDD));
}

// acc[d0 .. d0 + 16·kRegs) += Σ_j p_j·v_j: kRegs registers of 16 dimensions, each with two
// partial sums (even and odd keys) added at the end. The register count is a template argument,
// so the sums stay in registers (with a run-time count they went through the stack).
template <int kRegs>
SMELT_AVX512 inline void WeightedValuesChunk(const float* p, const float* v, int64_t n, int64_t stride, int head_dim,
                                             int d0, float* acc) {
  __m512 even[kRegs], odd[kRegs];
  __mmask16 mask[kRegs];
  for (int r = 0; r < kRegs; ++r) {
    mask[r] = TailMask(head_dim - d0 - 16 * r);
    even[r] = _mm512_maskz_loadu_ps(mask[r], acc + d0 + 16 * r);
    odd[r] = _mm512_setzero_ps();
  }
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    const __m512 pe = _mm512_set1_ps(p[j]), po = _mm512_set1_ps(p[j + 1]);
    const float *ve = v + j * stride + d0, *vo = ve + stride;
    for (int r = 0; r < kRegs; ++r) {
      even[r] = _mm512_fmadd_ps(pe, _mm512_maskz_loadu_ps(mask[r], ve + 16 * r), even[r]);
      odd[r] = _mm512_fmadd_ps(po, _mm512_maskz_loadu_ps(mask[r], vo + 16 * r), odd[r]);
    }
  }
  if (j < n) {
    const __m512 pe = _mm512_set1_ps(p[j]);
    for (int r = 0; r < kRegs; ++r)
      even[r] = _mm512_fmadd_ps(pe, _mm512_maskz_loadu_ps(mask[r], v + j * stride + d0 + 16 * r), even[r]);
  }
  for (int r = 0; r < kRegs; ++r) _mm512_mask_storeu_ps(acc + d0 + 16 * r, mask[r], _mm512_add_ps(even[r], odd[r]));
}

SMELT_AVX512 void Avx512AttendTileImpl(const float* q, const float* k, const float* v, int64_t n, int64_t stride,
                                       int head_dim, float scale, OnlineSoftmax& s, float* acc) {
  alignas(64) float p[kAttnTile];
  // Scores 16 keys at a time: one 16-lane product chain per key, the 16 chains summed together
  // (keys past n read key n - 1's row and are masked out).
  __m512 best = _mm512_set1_ps(-INFINITY);
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const __mmask16 keys = TailMask(n - j0);
    const float* row[16];
    for (int j = 0; j < 16; ++j) row[j] = k + std::min<int64_t>(j0 + j, n - 1) * stride;
    __m512 dot[16];
    for (__m512& d : dot) d = _mm512_setzero_ps();
    for (int d = 0; d < head_dim; d += 16) {
      const __mmask16 m = TailMask(head_dim - d);
      const __m512 qd = _mm512_maskz_loadu_ps(m, q + d);
      for (int j = 0; j < 16; ++j) dot[j] = _mm512_fmadd_ps(qd, _mm512_maskz_loadu_ps(m, row[j] + d), dot[j]);
    }
    const __m512 scores = _mm512_mul_ps(SumsOf16(dot), _mm512_set1_ps(scale));
    _mm512_store_ps(p + j0, scores);
    best = _mm512_mask_max_ps(best, keys, best, scores);
  }
  const float tile_max = _mm512_reduce_max_ps(best);
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
  // acc += Σ_j p_j·v_j, 64 dimensions at a time.
  for (int d0 = 0; d0 < head_dim; d0 += 64) {
    switch (std::min(4, (head_dim - d0 + 15) / 16)) {
      case 4: WeightedValuesChunk<4>(p, v, n, stride, head_dim, d0, acc); break;
      case 3: WeightedValuesChunk<3>(p, v, n, stride, head_dim, d0, acc); break;
      case 2: WeightedValuesChunk<2>(p, v, n, stride, head_dim, d0, acc); break;
      default: WeightedValuesChunk<1>(p, v, n, stride, head_dim, d0, acc); break;
    }
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
