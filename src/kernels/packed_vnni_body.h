// The body of the VNNI twins of PackedGemmReference (kernels/packed.h), included by
// packed_vnni.cc once per instruction encoding: SMELT_VNNI_NS names the namespace,
// SMELT_VNNI_TARGET is the target attribute every function carries, and SMELT_DPBUSD(acc, u, s)
// is the 256-bit dot product of unsigned by signed bytes (AVX-512 VNNI's EVEX form, or
// AVX-VNNI's VEX form). No include guard: it is meant to be read twice.
//
// Each packed chunk (4 codes of each of the 8 rows) meets a broadcast of the 4 matching
// activation bytes in one vpdpbusd, which adds the four products of every row into its int32 lane
// without the int16 pair sums (and their saturation) of the AVX2 twin. vpdpbusd takes unsigned
// weights, so every type's codes are made non-negative with an offset taken off once per block:
//   Q4_0    the stored nibble q_w (0..15), value q_w − 8:   Σ q_w·q_a − 8·Σ q_a
//   Q5_0    the stored 5-bit code q_w (0..31), value q_w − 16: Σ q_w·q_a − 16·Σ q_a
//   Q4_1, Q5_1  the stored code (0..15, 0..31), no offset:  Σ q_w·q_a (the minimum's term after)
//   IQ4_NL  table[q_w] + 128 (1..241):                        Σ (v + 128)·q_a − 128·Σ q_a
//   Q8_0    q_w + 128 (q_w ^ 0x80, 0..255):                   Σ (q_w + 128)·q_a − 128·Σ q_a
//   NF4     its fixed-point level L = 256·h + l (formats/nf4.h) as two bytes h + 128 and l + 128,
//           two vpdpbusd per chunk:   256·Σ (h + 128)·q_a + Σ (l + 128)·q_a − 257·128·Σ q_a
// so every type reads the activation blocks' code sums a_sums. The integer sums are exact
// (|Σ| < 2^31), and the f32 operations are the reference's in the reference's order, so the
// results are the same bits.

namespace SMELT_VNNI_NS {

SMELT_VNNI_TARGET inline __m256i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

#define SMELT_PACKED_TARGET SMELT_VNNI_TARGET
#include "kernels/packed_nibbles_body.h"
#undef SMELT_PACKED_TARGET

// A packed block's codes as unsigned bytes (UnsignedCodes): c[j] holds the 8 rows' codes that
// meet activation bytes 4j .. 4j+3.
// Q4_0, Q5_0 (offsets 8, 16), Q4_1, Q5_1 (no offset: their minimum term comes after).
template <class Packed, int32_t kOff>
struct UnsignedNibbleCodes {
  static constexpr int32_t kOffset = kOff;
  __m256i c[8];
  SMELT_VNNI_TARGET explicit UnsignedNibbleCodes(const Packed& w) { UnsignedCodes(w, c); }
};
using UnsignedQ4_0 = UnsignedNibbleCodes<BlockQ4_0x8, 8>;
using UnsignedQ5_0 = UnsignedNibbleCodes<BlockQ5_0x8, 16>;
using UnsignedQ4_1 = UnsignedNibbleCodes<BlockQ4_1x8, 0>;
using UnsignedQ5_1 = UnsignedNibbleCodes<BlockQ5_1x8, 0>;
struct UnsignedIQ4_NL {
  static constexpr int32_t kOffset = 128;
  __m256i c[8];
  SMELT_VNNI_TARGET explicit UnsignedIQ4_NL(const BlockQ4_0x8& w) {
    UnsignedCodes(w, c);
    LookUpNibbles(NibbleCodebook(kIQ4NLValues, (char)0x80), c, c);  // + 128 mod 256: every entry lies in -127..113
  }
};
struct UnsignedQ8_0 {
  static constexpr int32_t kOffset = 128;
  __m256i c[8];
  SMELT_VNNI_TARGET explicit UnsignedQ8_0(const BlockQ8_0x8& w) {
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int k = 0; k < 8; ++k)
      c[k] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs[k])), flip);
  }
};

struct UnsignedNF4 {
  static constexpr int32_t kOffset = 257 * 128;
  static constexpr float kResultScale = PackedResultScale(DType::kNF4);
  __m256i high[8], low[8];
  SMELT_VNNI_TARGET explicit UnsignedNF4(const BlockQ4_0x8& w) {
    __m256i n[8];
    UnsignedCodes(w, n);
    // + 128 mod 256: every entry lies in -128..127
    LookUpNibbles(NibbleCodebook(kNF4High, (char)0x80), n, high);
    LookUpNibbles(NibbleCodebook(kNF4Low, (char)0x80), n, low);
  }
};

// Lane r: row r's exact Σ value·q_a for one activation block (two accumulators: the integer
// sums do not depend on the order, and the chain is half as long).
template <class Codes, class A>
SMELT_VNNI_TARGET inline __m256i PackedRowSums(const Codes& w, const A& a, int32_t a_sum) {
  __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
  for (int j = 0; j < 8; j += 2) {
    s0 = SMELT_DPBUSD(s0, w.c[j], Broadcast4(a.qs + 4 * j));
    s1 = SMELT_DPBUSD(s1, w.c[j + 1], Broadcast4(a.qs + 4 * j + 4));
  }
  if constexpr (Codes::kOffset == 0) return _mm256_add_epi32(s0, s1);
  return _mm256_sub_epi32(_mm256_add_epi32(s0, s1), _mm256_set1_epi32(Codes::kOffset * a_sum));
}

// NF4: the two bytes' sums, high·256 + low (|Σ| < 2^27).
template <class A>
SMELT_VNNI_TARGET inline __m256i PackedRowSums(const UnsignedNF4& w, const A& a, int32_t a_sum) {
  __m256i h = _mm256_setzero_si256(), l = _mm256_setzero_si256();
  for (int j = 0; j < 8; ++j) {
    const __m256i x = Broadcast4(a.qs + 4 * j);
    h = SMELT_DPBUSD(h, w.high[j], x);
    l = SMELT_DPBUSD(l, w.low[j], x);
  }
  return _mm256_sub_epi32(_mm256_add_epi32(_mm256_slli_epi32(h, 8), l), _mm256_set1_epi32(UnsignedNF4::kOffset * a_sum));
}

#define SMELT_PACKED_TARGET SMELT_VNNI_TARGET
#include "kernels/packed_tokens_body.h"
#undef SMELT_PACKED_TARGET

inline PackedGemmFn Select(DType type) {
  switch (type) {
    case DType::kQ4_0: return Gemm<BlockQ4_0x8, UnsignedQ4_0>;
    case DType::kIQ4_NL: return Gemm<BlockQ4_0x8, UnsignedIQ4_NL>;
    case DType::kNF4: return Gemm<BlockQ4_0x8, UnsignedNF4>;
    case DType::kQ5_0: return Gemm<BlockQ5_0x8, UnsignedQ5_0>;
    case DType::kQ4_1: return Gemm<BlockQ4_1x8, UnsignedQ4_1>;
    case DType::kQ5_1: return Gemm<BlockQ5_1x8, UnsignedQ5_1>;
    case DType::kQ8_0: return Gemm<BlockQ8_0x8, UnsignedQ8_0>;
    default: return nullptr;
  }
}

}  // namespace SMELT_VNNI_NS
