// AVX2 twins of the k-quant scale searches (k_quants_search.h). Each of the 8 lanes runs one
// sub-block's search with exactly the scalar reference's sequence of f32 operations
// (k_quants_ref.cc): the same expressions in the same order, explicit multiplies and adds (no
// fused multiply-add: this file enables AVX2 only, and -std=c++20 does not contract), IEEE
// division and square root, ggml's magic-number rounding done on the integer bits, and every
// data-dependent branch of the scalar code turned into a per-lane blend. So the codes and
// scales are bit-identical to the scalar ones, while the candidate loops, which dominate
// encoding time, run on 8 sub-blocks at once.
//
// Only these functions carry the AVX2 target attribute; nothing here is inlined into code that
// may run on a CPU without AVX2 (dispatch is CpuHasAvx2() in k_quants_ref.cc).
#include "formats/k_quants_search.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <cstdint>

#include "formats/k_quants.h"
#include "formats/quant_util.h"  // turns off clang's FMA contraction for this file

#define SMELT_AVX2 __attribute__((target("avx2")))

namespace smelt::kquant {
namespace {


// ggml's nearest_int on 8 lanes: the same add of 1.5 * 2^23 and the same bit arithmetic.
SMELT_AVX2 inline __m256i NearestInt8(__m256 v) {
  const __m256i bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.0f)));
  return _mm256_sub_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                          _mm256_set1_epi32(0x00400000));
}
SMELT_AVX2 inline __m256i Clamp8(__m256i v, int lo, int hi) {
  return _mm256_max_epi32(_mm256_set1_epi32(lo), _mm256_min_epi32(_mm256_set1_epi32(hi), v));
}
SMELT_AVX2 inline __m256 Abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
SMELT_AVX2 inline __m256 Gt(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
SMELT_AVX2 inline __m256 Lt(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
// a where mask is clear, b where it is set.
SMELT_AVX2 inline __m256 Sel(__m256 a, __m256 b, __m256 mask) { return _mm256_blendv_ps(a, b, mask); }
SMELT_AVX2 inline __m256i SelI(__m256i a, __m256i b, __m256 mask) {
  return _mm256_blendv_epi8(a, b, _mm256_castps_si256(mask));
}
SMELT_AVX2 inline __m256 F(__m256i v) { return _mm256_cvtepi32_ps(v); }
SMELT_AVX2 inline __m256 Mul(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
SMELT_AVX2 inline __m256 Add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
SMELT_AVX2 inline __m256 Sub(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }
SMELT_AVX2 inline __m256 Div(__m256 a, __m256 b) { return _mm256_div_ps(a, b); }

// Lane j of xt[i] gets x[stride * j + i] (i < n): 8 sub-blocks side by side.
SMELT_AVX2 void Transpose(const float* x, int stride, int n, __m256* xt) {
  const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
  for (int i = 0; i < n; ++i) xt[i] = _mm256_i32gather_ps(x + i, idx, 4);
}
// L[stride * j + i] = lane j of Lt[i].
template <class T>
SMELT_AVX2 void Untranspose(const __m256i* Lt, int stride, int n, T* L) {
  alignas(32) int32_t v[8];
  for (int i = 0; i < n; ++i) {
    _mm256_store_si256((__m256i*)v, Lt[i]);
    for (int j = 0; j < 8; ++j) L[stride * j + i] = (T)v[j];
  }
}

// The error measure of MakeQkx2Quants: |diff| or diff^2.
template <bool kUseMad>
SMELT_AVX2 inline __m256 ErrorOf(__m256 diff) {
  if constexpr (kUseMad) {
    return Abs8(diff);
  } else {
    return Mul(diff, diff);
  }
}

// MakeQkx2Quants (k_quants_ref.cc) on 8 sub-blocks of n <= 32 weights, one per lane.
template <bool kUseMad>
SMELT_AVX2 void Qkx2Lanes(int n, int nmax, const __m256* x, const __m256* w, float rmin, float rdelta,
                          int nstep, __m256i* L, __m256* scale_out, __m256* the_min_out) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 min = x[0], max = x[0];
  __m256 sum_w = w[0];
  __m256 sum_x = Mul(sum_w, x[0]);
  for (int i = 1; i < n; ++i) {
    min = _mm256_min_ps(x[i], min);  // (x < min) ? x : min, as the scalar comparison
    max = _mm256_max_ps(x[i], max);
    sum_w = Add(sum_w, w[i]);
    sum_x = Add(sum_x, Mul(w[i], x[i]));
  }
  min = Sel(min, zero, Gt(min, zero));
  const __m256 flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ);
  const __m256 flat_min = min;
  __m256 iscale = Div(_mm256_set1_ps((float)nmax), Sub(max, min));
  __m256 scale = Div(_mm256_set1_ps(1.0f), iscale);
  __m256 best_error = zero;
  for (int i = 0; i < n; ++i) {
    L[i] = Clamp8(NearestInt8(Mul(iscale, Sub(x[i], min))), 0, nmax);
    const __m256 diff = Sub(Add(Mul(scale, F(L[i])), min), x[i]);
    best_error = Add(best_error, Mul(w[i], ErrorOf<kUseMad>(diff)));
  }
  if (nstep >= 1) {
    __m256i Laux[32];
    for (int is = 0; is <= nstep; ++is) {
      iscale = Div(_mm256_set1_ps(rmin + rdelta * (float)is + (float)nmax), Sub(max, min));
      __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
      for (int i = 0; i < n; ++i) {
        Laux[i] = Clamp8(NearestInt8(Mul(iscale, Sub(x[i], min))), 0, nmax);
        const __m256 wl = Mul(w[i], F(Laux[i]));
        sum_l = Add(sum_l, wl);
        sum_l2 = Add(sum_l2, Mul(wl, F(Laux[i])));
        sum_xl = Add(sum_xl, Mul(wl, x[i]));
      }
      const __m256 D = Sub(Mul(sum_w, sum_l2), Mul(sum_l, sum_l));
      const __m256 d_pos = Gt(D, zero);
      if (_mm256_movemask_ps(d_pos) == 0) continue;
      __m256 this_scale = Div(Sub(Mul(sum_w, sum_xl), Mul(sum_x, sum_l)), D);
      __m256 this_min = Div(Sub(Mul(sum_l2, sum_x), Mul(sum_l, sum_xl)), D);
      const __m256 min_pos = Gt(this_min, zero);
      this_min = Sel(this_min, zero, min_pos);
      this_scale = Sel(this_scale, Div(sum_xl, sum_l2), min_pos);
      __m256 cur_error = zero;
      for (int i = 0; i < n; ++i) {
        const __m256 diff = Sub(Add(Mul(this_scale, F(Laux[i])), this_min), x[i]);
        cur_error = Add(cur_error, Mul(w[i], ErrorOf<kUseMad>(diff)));
      }
      const __m256 take = _mm256_and_ps(d_pos, Lt(cur_error, best_error));
      if (_mm256_movemask_ps(take) == 0) continue;
      for (int i = 0; i < n; ++i) L[i] = SelI(L[i], Laux[i], take);
      best_error = Sel(best_error, cur_error, take);
      scale = Sel(scale, this_scale, take);
      min = Sel(min, this_min, take);
    }
  }
  // A flat sub-block (max == min) returns before any search: codes 0, scale 0.
  for (int i = 0; i < n; ++i) L[i] = SelI(L[i], _mm256_setzero_si256(), flat);
  *scale_out = Sel(scale, zero, flat);
  min = Sel(min, flat_min, flat);
  *the_min_out = _mm256_xor_ps(min, _mm256_set1_ps(-0.0f));  // -min, sign of zero included
}

// SignedAbsMax on 8 lanes: the first value of largest magnitude, and that magnitude.
SMELT_AVX2 __m256 SignedAbsMax8(const __m256* x, int n, __m256* amax) {
  __m256 a = _mm256_setzero_ps(), max = _mm256_setzero_ps();
  for (int i = 0; i < n; ++i) {
    const __m256 ax = Abs8(x[i]);
    const __m256 bigger = Gt(ax, a);
    a = Sel(a, ax, bigger);
    max = Sel(max, x[i], bigger);
  }
  *amax = a;
  return max;
}

// MakeQxQuants (rmse_type 1) on 8 sub-blocks of n weights; L gets l + nmax.
SMELT_AVX2 __m256 QxLanes(int n, int nmax, const __m256* x, __m256i* L) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 amax;
  const __m256 max = SignedAbsMax8(x, n, &amax);
  const __m256 flat = Lt(amax, _mm256_set1_ps(kGroupMaxEps));
  __m256 iscale = Div(_mm256_set1_ps((float)-nmax), max);
  __m256 sumlx = zero, suml2 = zero;
  for (int i = 0; i < n; ++i) {
    const __m256i l = Clamp8(NearestInt8(Mul(iscale, x[i])), -nmax, nmax - 1);
    L[i] = l;
    const __m256 w = Mul(x[i], x[i]);
    sumlx = Add(sumlx, Mul(Mul(w, x[i]), F(l)));
    suml2 = Add(suml2, Mul(Mul(w, F(l)), F(l)));
  }
  __m256 scale = Sel(zero, Div(sumlx, suml2), _mm256_cmp_ps(suml2, zero, _CMP_NEQ_UQ));
  __m256 best = Mul(scale, sumlx);
  __m256i Laux[16];
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = Div(_mm256_set1_ps(-((float)nmax + 0.1f * (float)is)), max);
    sumlx = suml2 = zero;
    for (int i = 0; i < n; ++i) {
      Laux[i] = Clamp8(NearestInt8(Mul(iscale, x[i])), -nmax, nmax - 1);
      const __m256 w = Mul(x[i], x[i]);
      sumlx = Add(sumlx, Mul(Mul(w, x[i]), F(Laux[i])));
      suml2 = Add(suml2, Mul(Mul(w, F(Laux[i])), F(Laux[i])));
    }
    const __m256 take = _mm256_and_ps(Gt(suml2, zero), Gt(Mul(sumlx, sumlx), Mul(best, suml2)));
    if (_mm256_movemask_ps(take) == 0) continue;
    for (int i = 0; i < n; ++i) L[i] = SelI(L[i], Laux[i], take);
    const __m256 s = Div(sumlx, suml2);
    scale = Sel(scale, s, take);
    best = Sel(best, Mul(s, sumlx), take);
  }
  for (int i = 0; i < n; ++i) {
    L[i] = SelI(_mm256_add_epi32(L[i], _mm256_set1_epi32(nmax)), _mm256_setzero_si256(), flat);
  }
  return Sel(scale, zero, flat);
}

// MakeQ3Quants on 8 sub-blocks of n weights: the coordinate descent runs in every lane until
// that lane's pass changes nothing (or 5 passes); L gets l + nmax.
SMELT_AVX2 __m256 Q3Lanes(int n, int nmax, const __m256* x, __m256i* L) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 amax;
  const __m256 max = SignedAbsMax8(x, n, &amax);
  const __m256 flat = Lt(amax, _mm256_set1_ps(kGroupMaxEps));
  const __m256 iscale = Div(_mm256_set1_ps((float)-nmax), max);
  __m256 sumlx = zero, suml2 = zero;
  for (int i = 0; i < n; ++i) {
    L[i] = Clamp8(NearestInt8(Mul(iscale, x[i])), -nmax, nmax - 1);
    const __m256 w = Mul(x[i], x[i]);
    sumlx = Add(sumlx, Mul(Mul(w, x[i]), F(L[i])));
    suml2 = Add(suml2, Mul(Mul(w, F(L[i])), F(L[i])));
  }
  __m256 active = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int itry = 0; itry < 5 && _mm256_movemask_ps(active) != 0; ++itry) {
    __m256 changed = zero;
    for (int i = 0; i < n; ++i) {
      const __m256 w = Mul(x[i], x[i]);
      const __m256 wx = Mul(w, x[i]);
      const __m256 fl = F(L[i]);
      const __m256 slx_out = Sub(sumlx, Mul(wx, fl));  // the scalar code goes on only if > 0
      __m256 slx = slx_out;
      __m256 sl2 = Sub(suml2, Mul(Mul(w, fl), fl));
      const __m256i new_l = Clamp8(NearestInt8(Div(Mul(x[i], sl2), slx)), -nmax, nmax - 1);
      const __m256 fn = F(new_l);
      const __m256 differs = _mm256_castsi256_ps(
          _mm256_xor_si256(_mm256_cmpeq_epi32(new_l, L[i]), _mm256_set1_epi32(-1)));
      slx = Add(slx, Mul(wx, fn));
      sl2 = Add(sl2, Mul(Mul(w, fn), fn));
      const __m256 better = _mm256_and_ps(
          Gt(sl2, zero), Gt(Mul(Mul(slx, slx), suml2), Mul(Mul(sumlx, sumlx), sl2)));
      const __m256 take =
          _mm256_and_ps(_mm256_and_ps(active, Gt(slx_out, zero)), _mm256_and_ps(differs, better));
      L[i] = SelI(L[i], new_l, take);
      sumlx = Sel(sumlx, slx, take);
      suml2 = Sel(suml2, sl2, take);
      changed = _mm256_or_ps(changed, take);
    }
    active = _mm256_and_ps(active, changed);
  }
  for (int i = 0; i < n; ++i) {
    L[i] = SelI(_mm256_add_epi32(L[i], _mm256_set1_epi32(nmax)), _mm256_setzero_si256(), flat);
  }
  const __m256 scale = Sel(zero, Div(sumlx, suml2), Gt(suml2, zero));
  return Sel(scale, zero, flat);
}

SMELT_AVX2 void SearchK4Avx2(const float* x, int nmax, float rmin, int nstep, float* scales, float* mins,
                             uint8_t* L) {
  __m256 xt[32], wt[32];
  __m256i Lt[32];
  Transpose(x, 32, 32, xt);
  __m256 sum_x2 = _mm256_setzero_ps();
  for (int l = 0; l < 32; ++l) sum_x2 = Add(sum_x2, Mul(xt[l], xt[l]));
  const __m256 av_x = _mm256_sqrt_ps(Div(sum_x2, _mm256_set1_ps(32.0f)));
  for (int l = 0; l < 32; ++l) wt[l] = Add(av_x, Abs8(xt[l]));
  __m256 scale, the_min;
  Qkx2Lanes<false>(32, nmax, xt, wt, rmin, 0.1f, nstep, Lt, &scale, &the_min);
  _mm256_storeu_ps(scales, scale);
  _mm256_storeu_ps(mins, the_min);
  Untranspose(Lt, 32, 32, L);
}

SMELT_AVX2 void SearchQ2Avx2(const float* x, float* scales, float* mins, uint8_t* L) {
  __m256 xt[16], wt[16];
  __m256i Lt[16];
  for (int g = 0; g < 2; ++g) {  // sub-blocks 8g .. 8g+7
    const int off = 128 * g;
    Transpose(x + off, 16, 16, xt);
    for (int l = 0; l < 16; ++l) wt[l] = Abs8(xt[l]);
    __m256 scale, the_min;
    Qkx2Lanes<true>(16, 3, xt, wt, -0.5f, 0.1f, 15, Lt, &scale, &the_min);
    _mm256_storeu_ps(scales + 8 * g, scale);
    _mm256_storeu_ps(mins + 8 * g, the_min);
    Untranspose(Lt, 16, 16, L + off);
  }
}

// Q3_K and Q6_K: a symmetric search (QxLanes, Q3Lanes) on the 16 sub-blocks of 16, 8 at a time.
template <__m256 (*Lanes)(int, int, const __m256*, __m256i*), int kNmax>
SMELT_AVX2 void SearchSymmetricAvx2(const float* x, float* scales, int8_t* L) {
  __m256 xt[16];
  __m256i Lt[16];
  for (int g = 0; g < 2; ++g) {
    Transpose(x + 128 * g, 16, 16, xt);
    _mm256_storeu_ps(scales + 8 * g, Lanes(16, kNmax, xt, Lt));
    Untranspose(Lt, 16, 16, L + 128 * g);
  }
}

}  // namespace

const Searches* Avx2Searches() {
  static constexpr Searches kAvx2{SearchK4Avx2, SearchQ2Avx2, SearchSymmetricAvx2<Q3Lanes, 4>,
                                  SearchSymmetricAvx2<QxLanes, 32>};
  return &kAvx2;
}

}  // namespace smelt::kquant

#else

namespace smelt::kquant {
const Searches* Avx2Searches() { return nullptr; }
}  // namespace smelt::kquant

#endif

#undef SMELT_AVX2  // this file's own (unity builds put several files in one unit)
