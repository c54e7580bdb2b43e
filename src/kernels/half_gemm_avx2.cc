// The AVX2 twin of kernels/half_gemm.h for CPUs without AVX-512: the block's rows widened to f32
// once, then four weight rows × three tokens per step, twelve 8-lane fused multiply-add chains
// (sixteen registers in all), each reduced across its lanes; the last C % 8 columns summed one by
// one after the chain. Every product is exact in f32, as in the other twins; only the order of the
// sums differs from the row dot. Only these functions carry the target attribute.
#include "kernels/half_gemm.h"

#include "core/cpu.h"
#include "core/half.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <algorithm>

#include "kernels/horizontal_sum_avx2.h"

#define SMELT_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace smelt {
namespace {

SMELT_AVX2 inline __m256 Widen8F16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
SMELT_AVX2 inline __m256 Widen8Bf16(const uint8_t* p) {
  return _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}
constexpr int kRows2 = 4, kTokens2 = 3;

template <__m256 (*Widen8)(const uint8_t*), float (*One)(const void*)>
SMELT_AVX2 void HalfGemm256(const uint8_t* rows, size_t w_stride, int64_t n, const uint8_t* a, size_t a_stride,
                            int64_t T, int64_t C, float* out, int64_t ld, float* scratch) {
  const int64_t C8 = C / 8 * 8;
  float* w = scratch;  // the rows widened: n × C floats
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* src = rows + r * w_stride;
    for (int64_t c = 0; c < C8; c += 8) _mm256_storeu_ps(w + r * C + c, Widen8(src + 2 * c));
    for (int64_t c = C8; c < C; ++c) w[r * C + c] = One(src + 2 * c);
  }
  for (int64_t r0 = 0; r0 < n; r0 += kRows2) {
    const int nr = (int)std::min<int64_t>(kRows2, n - r0);
    const float* wr[kRows2];
    for (int i = 0; i < kRows2; ++i) wr[i] = w + std::min<int64_t>(r0 + i, n - 1) * C;  // missing rows repeat
    for (int64_t t0 = 0; t0 < T; t0 += kTokens2) {
      const int nt = (int)std::min<int64_t>(kTokens2, T - t0);
      const uint8_t* ar[kTokens2];
      for (int j = 0; j < kTokens2; ++j) ar[j] = a + std::min<int64_t>(t0 + j, T - 1) * a_stride;  // and tokens
      __m256 acc[kRows2][kTokens2];
      for (auto& row : acc)
        for (__m256& v : row) v = _mm256_setzero_ps();
      for (int64_t c = 0; c < C8; c += 8) {
        __m256 x[kTokens2];
        for (int j = 0; j < kTokens2; ++j) x[j] = Widen8(ar[j] + 2 * c);
        for (int i = 0; i < kRows2; ++i) {
          const __m256 wv = _mm256_loadu_ps(wr[i] + c);
          for (int j = 0; j < kTokens2; ++j) acc[i][j] = _mm256_fmadd_ps(wv, x[j], acc[i][j]);
        }
      }
      for (int j = 0; j < nt; ++j)
        for (int i = 0; i < nr; ++i) {
          float sum = HorizontalSum(acc[i][j]);
          for (int64_t c = C8; c < C; ++c) sum += wr[i][c] * One(ar[j] + 2 * c);
          out[(t0 + j) * ld + r0 + i] = sum;
        }
    }
  }
}

}  // namespace

PromptGemm Avx2HalfGemm(DType type) {
  if (!CpuHasAvx2FmaF16c()) return {};
  switch (type) {
    case DType::kF16: return {HalfGemm256<Widen8F16, ReadF16>, nullptr};
    case DType::kBF16: return {HalfGemm256<Widen8Bf16, ReadBf16>, nullptr};
    default: return {};
  }
}

}  // namespace smelt

#else

namespace smelt {
PromptGemm Avx2HalfGemm(DType) { return {}; }
}  // namespace smelt

#endif

#undef SMELT_AVX2
