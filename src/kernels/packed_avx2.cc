// The AVX2 twin of PackedGemmReference (kernels/packed.h): per packed block, the 8 rows' codes are
// unpacked once into 8 registers of 32 unsigned bytes (4 codes of each row), then for every token
// each register meets a broadcast of the 4 matching activation bytes in _mm256_maddubs_epi16. The
// int16 pair sums of the 8 registers add up without overflow (8 · 2 · 15 · 127 < 2^15) and one
// _mm256_madd_epi16 leaves row r's Σ q_w·q_a in lane r; then −8·Σ q_a, one conversion and one
// fused multiply-add by the 8 rows' d_w·d_a. The same f32 operations in the same order as the
// reference, so the results are the same bits.
//
// Only these functions carry the target attribute (dispatch: CpuHasAvx2FmaF16c() in packed.cc).
#include "kernels/packed.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <cstring>

#include "formats/q8_0.h"

#define SMELT_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace smelt {
namespace {

SMELT_AVX2 inline __m256i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

// One token's 8 row sums of one packed block, given the block's unpacked codes.
SMELT_AVX2 inline __m256 TokenTerm(const __m256i (&codes)[8], __m256 d_w, const BlockQ8_0& a, int32_t a_sum,
                                   __m256 acc) {
  __m256i pairs = _mm256_maddubs_epi16(codes[0], Broadcast4(a.qs));
  for (int c = 1; c < 4; ++c) pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(codes[c], Broadcast4(a.qs + 4 * c)));
  for (int c = 0; c < 4; ++c)
    pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(codes[4 + c], Broadcast4(a.qs + 16 + 4 * c)));
  __m256i sums = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
  sums = _mm256_sub_epi32(sums, _mm256_set1_epi32(8 * a_sum));
  const __m256 d = _mm256_mul_ps(d_w, _mm256_set1_ps(_cvtsh_ss(a.d)));
  return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sums), acc);
}

SMELT_AVX2 inline void Unpack(const BlockQ4_0x8& w, __m256i (&codes)[8]) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  for (int c = 0; c < 4; ++c) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs[c]));
    codes[c] = _mm256_and_si256(bytes, mask);
    codes[4 + c] = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask);
  }
}

SMELT_AVX2 inline __m256 Scales(const BlockQ4_0x8& w) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.d)));
}

// Tokens t0 .. t0+NT-1 against the whole panel, accumulators in registers.
template <int NT>
SMELT_AVX2 inline void Tokens(const BlockQ4_0x8* panel, int64_t nb, const uint8_t* a, size_t a_stride,
                              const int32_t* a_sums, int64_t t0, float* y, int64_t y_stride) {
  __m256 acc[NT];
  for (int k = 0; k < NT; ++k) acc[k] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    // Decoding streams the panel once: ask for the bytes 384 B (under 3 blocks) ahead; 128 B to
    // 512 B measured alike, 1 KiB and more slower (220M Q4_0 decode, 1 thread).
    _mm_prefetch(reinterpret_cast<const char*>(panel + b) + 384, _MM_HINT_T0);
    __m256i codes[8];
    Unpack(panel[b], codes);
    const __m256 d_w = Scales(panel[b]);
    for (int k = 0; k < NT; ++k) {
      const auto* act = reinterpret_cast<const BlockQ8_0*>(a + (t0 + k) * a_stride);
      acc[k] = TokenTerm(codes, d_w, act[b], a_sums[(t0 + k) * nb + b], acc[k]);
    }
  }
  for (int k = 0; k < NT; ++k) _mm256_storeu_ps(y + (t0 + k) * y_stride, acc[k]);
}

SMELT_AVX2 void Avx2Gemm(const BlockQ4_0x8* panel, int64_t nb, const uint8_t* a, size_t a_stride,
                         const int32_t* a_sums, int64_t T, float* y, int64_t y_stride) {
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) Tokens<4>(panel, nb, a, a_stride, a_sums, t, y, y_stride);
  for (; t < T; ++t) Tokens<1>(panel, nb, a, a_stride, a_sums, t, y, y_stride);
}

}  // namespace

PackedGemmFn Avx2PackedGemm() { return Avx2Gemm; }

}  // namespace smelt

#else

namespace smelt {
PackedGemmFn Avx2PackedGemm() { return nullptr; }
}  // namespace smelt

#endif
