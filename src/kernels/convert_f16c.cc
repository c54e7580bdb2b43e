// The F16C twins of formats/plain.h's half conversions (kernels/convert.h): 8 values per
// vcvtph2ps / vcvtps2ph (round to nearest even, as FloatToFp16), the tail through the plain loop;
// and the AVX2 twin of the scaled int8 widening (8 values: widen, convert, one multiply).
// Only these functions carry the target attribute (dispatch: convert.cc).
#include "kernels/convert.h"

#include "core/cpu.h"
#include "formats/plain.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define SMELT_F16C __attribute__((target("avx2,fma,f16c")))

namespace smelt {
namespace {

SMELT_F16C void F16cHalfRowToFloatImpl(const fp16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  ConvertRowF16ToF32(x + i, y + i, n - i);
}

SMELT_F16C void F16cFloatRowToHalfImpl(const float* x, fp16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  ConvertRowF32ToF16(x + i, y + i, n - i);
}

SMELT_F16C void Avx2ScaledInt8RowToFloatImpl(const int8_t* q, float d, float* y, int64_t n) {
  const __m256 scale = _mm256_set1_ps(d);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes))));
  }
  ScaledInt8RowToFloatRef(q + i, d, y + i, n - i);
}

}  // namespace

ScaledInt8RowToFloatFn Avx2ScaledInt8RowToFloat() { return CpuHasAvx2FmaF16c() ? Avx2ScaledInt8RowToFloatImpl : nullptr; }

HalfRowToFloatFn F16cHalfRowToFloat() { return CpuHasAvx2FmaF16c() ? F16cHalfRowToFloatImpl : nullptr; }
FloatRowToHalfFn F16cFloatRowToHalf() { return CpuHasAvx2FmaF16c() ? F16cFloatRowToHalfImpl : nullptr; }

}  // namespace smelt

#else

namespace smelt {
ScaledInt8RowToFloatFn Avx2ScaledInt8RowToFloat() { return nullptr; }
HalfRowToFloatFn F16cHalfRowToFloat() { return nullptr; }
FloatRowToHalfFn F16cFloatRowToHalf() { return nullptr; }
}  // namespace smelt

#endif
