// AVX2 twins of the table-4 row dots (kernels/qdot_table4.h) against f32 activations.
//
// Eight codes (four bytes) per step: the bytes broadcast to all eight 32-bit lanes and lane j
// shifted right by 4j, so that its low four bits are code j. A table of 16 f32 values is two
// 8-entry permutes (which read only the low three bits) blended by bit 3 (moved to the sign bit).
// One fused multiply-add per eight weights, into one of four accumulators in turn.
//
// Only these functions carry the target attribute (dispatch: kernels/qdot.cc).
#include "kernels/qdot_table4.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <cstring>

#include "kernels/horizontal_sum_avx2.h"
#include "kernels/prefetch.h"

#define SMELT_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace smelt::table4 {
namespace avx2 {
namespace {

struct Table16 {
  __m256 lo, hi;  // values of codes 0..7 and 8..15
};

SMELT_AVX2 inline float HalfAt(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return _cvtsh_ss(h);
}

// The 16 values of the row whose header starts at h, as the format's decoder computes them.
template <Kind K>
SMELT_AVX2 inline Table16 MakeTable(const uint8_t* h, const __m256 levels_lo, const __m256 levels_hi) {
  if constexpr (K == Kind::kCodebook) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h))),
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 16)))};
  } else {
    const __m256 d = _mm256_set1_ps(HalfAt(h));
    Table16 t{_mm256_mul_ps(d, levels_lo), _mm256_mul_ps(d, levels_hi)};
    if constexpr (K == Kind::kAsymmetric) {
      const __m256 m = _mm256_set1_ps(HalfAt(h + 2));
      t.lo = _mm256_add_ps(t.lo, m), t.hi = _mm256_add_ps(t.hi, m);
    }
    return t;
  }
}

// Eight weights of the table from the four code bytes at p, times x[0..8), into acc.
SMELT_AVX2 inline __m256 Step(const uint8_t* p, const Table16& t, const float* x, __m256 acc) {
  uint32_t word;
  std::memcpy(&word, p, sizeof word);
  const __m256i v = _mm256_srlv_epi32(_mm256_set1_epi32((int)word), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
  const __m256 w = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t.lo, v), _mm256_permutevar8x32_ps(t.hi, v),
                                    _mm256_castsi256_ps(_mm256_slli_epi32(v, 28)));
  return _mm256_fmadd_ps(w, _mm256_loadu_ps(x), acc);
}

template <DType W>
SMELT_AVX2 float Dot(const void* w_row, const void* a_row, int64_t n) {
  constexpr Layout L = LayoutOf(W);
  alignas(32) float levels[16];
  for (int c = 0; c < 16; ++c) levels[c] = Level(L.kind, c);
  const __m256 lo = _mm256_load_ps(levels), hi = _mm256_load_ps(levels + 8);
  const auto* p = static_cast<const uint8_t*>(w_row);
  const auto* x = static_cast<const float*>(a_row);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  static_assert(L.group == 0);  // one table for the row; rows are a multiple of 8
  const Table16 t = MakeTable<L.kind>(p, lo, hi);
  const uint8_t* codes = p + L.header;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    PrefetchAhead<16>(codes + i / 2);
    for (int k = 0; k < 4; ++k) acc[k] = Step(codes + i / 2 + 4 * k, t, x + i + 8 * k, acc[k]);
  }
  for (int k = 0; i < n; i += 8, ++k) acc[k] = Step(codes + i / 2, t, x + i, acc[k]);
  return HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

template <DType W>
struct OneToken {
  static constexpr QDotFn kFn = Dot<W>;
};

}  // namespace
}  // namespace avx2

QDotFn Avx2Dot(DType weight) { return Find<avx2::OneToken, QDotFn>(weight); }

}  // namespace smelt::table4

#else

namespace smelt::table4 {
QDotFn Avx2Dot(DType) { return nullptr; }
}  // namespace smelt::table4

#endif

#undef SMELT_AVX2
