// The AVX-512 kernel of kernels/half_gemm.h: the block's rows widened to f32 once, then four
// weight rows (in L1) × four tokens per step, sixteen accumulators of 16 lanes, the tokens' halves
// widened as they are read (four conversions per sixteen fused multiply-adds; widening every token
// once beforehand and streaming the rows past them measured slower, 176 -> 129 t/s on the 220M F16
// prompt). Only these functions carry the target attribute.
#include "kernels/half_gemm.h"

#include "core/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <algorithm>

#include "core/gcc_avx512_warnings_off.h"

#define SMELT_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512vl,avx512bw")))

namespace smelt {
namespace {

inline __mmask16 Lanes(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

SMELT_AVX512 inline __m512 LoadF16(const uint8_t* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
SMELT_AVX512 inline __m512 LoadBf16(const uint8_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

constexpr int kRows = 4, kTokens = 4;

template <__m512 (*Load)(const uint8_t*, __mmask16)>
SMELT_AVX512 void HalfGemm512(const uint8_t* rows, size_t w_stride, int64_t n, const uint8_t* a, size_t a_stride,
                              int64_t T, int64_t C, float* out, int64_t ld, float* scratch) {
  float* w = scratch;  // the rows widened: n × C floats
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 m = Lanes(C - c);
      _mm512_mask_storeu_ps(w + r * C + c, m, Load(rows + r * w_stride + 2 * c, m));
    }
  for (int64_t r0 = 0; r0 < n; r0 += kRows) {
    const int nr = (int)std::min<int64_t>(kRows, n - r0);
    const float* wr[kRows];
    for (int i = 0; i < kRows; ++i) wr[i] = w + std::min<int64_t>(r0 + i, n - 1) * C;  // missing rows repeat
    for (int64_t t0 = 0; t0 < T; t0 += kTokens) {
      const int nt = (int)std::min<int64_t>(kTokens, T - t0);
      const uint8_t* ar[kTokens];
      for (int j = 0; j < kTokens; ++j) ar[j] = a + std::min<int64_t>(t0 + j, T - 1) * a_stride;  // and tokens
      __m512 acc[kRows][kTokens];
      for (auto& row : acc)
        for (__m512& v : row) v = _mm512_setzero_ps();
      for (int64_t c = 0; c < C; c += 16) {
        const __mmask16 m = Lanes(C - c);
        __m512 x[kTokens];
        for (int j = 0; j < kTokens; ++j) x[j] = Load(ar[j] + 2 * c, m);
        for (int i = 0; i < kRows; ++i) {
          const __m512 wv = _mm512_maskz_loadu_ps(m, wr[i] + c);
          for (int j = 0; j < kTokens; ++j) acc[i][j] = _mm512_fmadd_ps(wv, x[j], acc[i][j]);
        }
      }
      for (int j = 0; j < nt; ++j)
        for (int i = 0; i < nr; ++i) out[(t0 + j) * ld + r0 + i] = _mm512_reduce_add_ps(acc[i][j]);
    }
  }
}

}  // namespace

PromptGemm Avx512HalfGemm(DType type) {
  if (!CpuHasAvx512F()) return {};
  switch (type) {
    case DType::kF16: return {HalfGemm512<LoadF16>, nullptr};
    case DType::kBF16: return {HalfGemm512<LoadBf16>, nullptr};
    default: return {};
  }
}

}  // namespace smelt

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt {
PromptGemm Avx512HalfGemm(DType) { return {}; }
}  // namespace smelt

#endif

#undef SMELT_AVX512
