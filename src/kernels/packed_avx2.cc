// The AVX2 twins of PackedGemmReference (kernels/packed.h). Q4_0: per packed block, the 8 rows'
// codes are unpacked once into 8 registers of 32 unsigned bytes (4 codes of each row), then for
// every token each register meets a broadcast of the 4 matching activation bytes in
// _mm256_maddubs_epi16. The int16 pair sums of the 8 registers add up without overflow
// (8 · 2 · 15 · 127 < 2^15) and one _mm256_madd_epi16 leaves row r's Σ q_w·q_a in lane r; then
// −8·Σ q_a, one conversion and one fused multiply-add by the 8 rows' d_w·d_a. Q8_0: the codes are
// signed, so each chunk goes through the sign trick (|q_w| times q_a with q_w's sign; pair sums up
// to 2 · 128 · 127 < 2^15) and is widened to int32 before the chunks add up; Q5_0's codes minus
// 16 take the same signed path. The same f32
// operations in the same order as the reference, so the results are the same bits.
//
// Only these functions carry the target attribute (dispatch: CpuHasAvx2FmaF16c() in packed.cc).
#include "kernels/packed.h"
#include "kernels/prefetch.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include "kernels/bits_avx2.h"

#include <cstring>

#include "formats/iq4_nl.h"
#include "formats/nf4.h"
#include "formats/q8_0.h"

#define SMELT_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace smelt {
namespace {

SMELT_AVX2 inline __m256i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

#define SMELT_PACKED_TARGET SMELT_AVX2
#include "kernels/packed_nibbles_body.h"
#undef SMELT_PACKED_TARGET

// Unsigned codes up to 15 (Q4_0 with its offset taken off after, Q4_1) or 31 (Q5_1): one
// token's 8 row sums of one packed block. The int16 pair sums of 8 registers (up to 15) or of 4
// (up to 31) add up without overflow (8 · 2 · 15 · 127 and 4 · 2 · 31 · 127 < 2^15).
template <int kOffset, int kMaxCode>
struct UnsignedCodesSums {
  __m256i c[8];
  // Lane r: Σ q_w·q_a − kOffset·Σ q_a of row r.
  template <class A>
  SMELT_AVX2 __m256i Sums(const A& a, int32_t a_sum) const {
    const __m256i ones = _mm256_set1_epi16(1);
    constexpr int kPerSum = kMaxCode <= 15 ? 8 : 4;
    __m256i sums = _mm256_setzero_si256();
    for (int k0 = 0; k0 < 8; k0 += kPerSum) {
      __m256i pairs = _mm256_maddubs_epi16(c[k0], Broadcast4(a.qs + 4 * k0));
      for (int k = k0 + 1; k < k0 + kPerSum; ++k)
        pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(c[k], Broadcast4(a.qs + 4 * k)));
      sums = _mm256_add_epi32(sums, _mm256_madd_epi16(pairs, ones));
    }
    if constexpr (kOffset != 0) sums = _mm256_sub_epi32(sums, _mm256_set1_epi32(kOffset * a_sum));
    return sums;
  }
};
struct CodesQ4_0 : UnsignedCodesSums<8, 15> {
  SMELT_AVX2 explicit CodesQ4_0(const BlockQ4_0x8& w) { UnsignedCodes(w, c); }
};
struct CodesQ4_1 : UnsignedCodesSums<0, 15> {
  SMELT_AVX2 explicit CodesQ4_1(const BlockQ4_1x8& w) { UnsignedCodes(w, c); }
};
struct CodesQ5_1 : UnsignedCodesSums<0, 31> {
  SMELT_AVX2 explicit CodesQ5_1(const BlockQ5_1x8& w) { UnsignedCodes(w, c); }
};

// Signed codes (Q8_0, IQ4_NL's codebook values), chunk k holding codes 4k .. 4k+3 of each row:
// their magnitudes taken once per block, their signs applied to the activations per token.
struct SignedCodes {
  __m256i c[8], mag[8];
  SMELT_AVX2 void Magnitudes() {
    for (int k = 0; k < 8; ++k) mag[k] = _mm256_abs_epi8(c[k]);
  }
  // Lane r: Σ q_w·q_a of row r.
  template <class A>
  SMELT_AVX2 __m256i Sums(const A& a, int32_t) const {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i sums = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
      const __m256i pairs = _mm256_maddubs_epi16(mag[k], _mm256_sign_epi8(Broadcast4(a.qs + 4 * k), c[k]));
      sums = _mm256_add_epi32(sums, _mm256_madd_epi16(pairs, ones));
    }
    return sums;
  }
};
struct CodesQ8_0 : SignedCodes {
  SMELT_AVX2 explicit CodesQ8_0(const BlockQ8_0x8& w) {
    for (int k = 0; k < 8; ++k) c[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs[k]));
    Magnitudes();
  }
};
// IQ4_NL: each nibble looked up in the codebook (one byte shuffle per 32 codes).
struct CodesIQ4_NL : SignedCodes {
  SMELT_AVX2 explicit CodesIQ4_NL(const BlockQ4_0x8& w) {
    UnsignedCodes(w, c);
    LookUpNibbles(NibbleCodebook(kIQ4NLValues), c, c);
    Magnitudes();
  }
};

// NF4: its fixed-point levels 256·h + l (formats/nf4.h) as two signed codebooks, h and l each
// through the signed path (pair sums up to 2 · 128 · 127 < 2^15), then 256·Σ h·q_a + Σ l·q_a.
struct CodesNF4 {
  static constexpr float kResultScale = PackedResultScale(DType::kNF4);
  SignedCodes high, low;
  SMELT_AVX2 explicit CodesNF4(const BlockQ4_0x8& w) {
    __m256i n[8];
    UnsignedCodes(w, n);
    LookUpNibbles(NibbleCodebook(kNF4High), n, high.c);
    LookUpNibbles(NibbleCodebook(kNF4Low), n, low.c);
    high.Magnitudes();
    low.Magnitudes();
  }
  template <class A>
  SMELT_AVX2 __m256i Sums(const A& a, int32_t a_sum) const {
    return _mm256_add_epi32(_mm256_slli_epi32(high.Sums(a, a_sum), 8), low.Sums(a, a_sum));
  }
};

// Q5_0: the codes (nibble | fifth bit << 4) − 16, signed, through the signed path (the unsigned
// 5-bit codes' pair sums over 8 registers could pass 2^15).
struct CodesQ5_0 : SignedCodes {
  SMELT_AVX2 explicit CodesQ5_0(const BlockQ5_0x8& w) {
    UnsignedCodes(w, c);
    for (__m256i& r : c) r = _mm256_sub_epi8(r, _mm256_set1_epi8(16));
    Magnitudes();
  }
};

template <class Codes, class A>
SMELT_AVX2 inline __m256i PackedRowSums(const Codes& codes, const A& a, int32_t a_sum) {
  return codes.Sums(a, a_sum);
}

#define SMELT_PACKED_TARGET SMELT_AVX2
#include "kernels/packed_tokens_body.h"
#undef SMELT_PACKED_TARGET

}  // namespace

PackedGemmFn Avx2PackedGemm(DType type) {
  switch (type) {
    case DType::kQ4_0: return Gemm<BlockQ4_0x8, CodesQ4_0>;
    case DType::kIQ4_NL: return Gemm<BlockQ4_0x8, CodesIQ4_NL>;
    case DType::kNF4: return Gemm<BlockQ4_0x8, CodesNF4>;
    case DType::kQ5_0: return Gemm<BlockQ5_0x8, CodesQ5_0>;
    case DType::kQ4_1: return Gemm<BlockQ4_1x8, CodesQ4_1>;
    case DType::kQ5_1: return Gemm<BlockQ5_1x8, CodesQ5_1>;
    case DType::kQ8_0: return Gemm<BlockQ8_0x8, CodesQ8_0>;
    default: return nullptr;
  }
}

}  // namespace smelt

#else

namespace smelt {
PackedGemmFn Avx2PackedGemm(DType) { return nullptr; }
}  // namespace smelt

#endif

#undef SMELT_AVX2  // this file's own (unity builds put several files in one unit)
