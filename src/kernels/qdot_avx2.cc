// AVX2 twins of the quantized dot products of qdot.cc. One block of 32 values per step: the
// weight codes are unpacked to 32 signed (or, for the _1 types, unsigned) bytes, multiplied with
// the activation bytes by _mm256_maddubs_epi16 (unsigned × signed byte pairs summed to int16)
// and widened to 8 int32 partial sums, which are exact: the same integer block sum as the
// reference. The 8 partial sums, converted to f32, are accumulated with one fused multiply-add by
// d_w·d_a per block, and summed across lanes at the end; only that f32 summation differs from the
// reference's (which adds one scaled block sum at a time).
//
// Only these functions carry the target attribute; nothing here is inlined into code that may
// run on a CPU without AVX2/FMA/F16C (dispatch is CpuHasAvx2FmaF16c() in qdot.cc).
#include "kernels/qdot_kernels.h"
#include "kernels/prefetch.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "core/half.h"
#include "formats/iq4_nl.h"
#include "formats/k_quants.h"
#include "formats/per_channel.h"
#include "formats/q4_0.h"
#include "formats/q4_1.h"
#include "formats/q5_0.h"
#include "formats/q5_1.h"
#include "formats/q8_0.h"

#define SMELT_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace smelt::qdot {
namespace {

SMELT_AVX2 inline float LoadHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return _cvtsh_ss(h);
}
SMELT_AVX2 inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
SMELT_AVX2 inline __m256i Load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// The 32 nibbles of a nibble-packed block in value order: bytes 0..15 the low nibbles of qs[0..16),
// bytes 16..31 the high ones.
SMELT_AVX2 inline __m256i Nibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(packed, mask);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// Byte j = 16 where bit j of the little-endian word at qh is set, else 0 (a Q5 block's fifth bits).
SMELT_AVX2 inline __m256i FifthBits(const uint8_t* qh) {
  // Byte j takes byte j / 8 of the word, then keeps only its bit j % 8.
  const __m256i word = _mm256_set1_epi32((int)LoadU32(qh));
  const __m256i spread = _mm256_shuffle_epi8(
      word, _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(16));
}

// 8 int32 partial sums of u[j]·s[j] as f32; u unsigned bytes in 0..255, s signed with
// |u[j]·s[j] + u[j+1]·s[j+1]| < 2^15 (true for u <= 128, |s| <= 127).
SMELT_AVX2 inline __m256 DotUnsigned(__m256i u, __m256i s) {
  const __m256i pairs = _mm256_maddubs_epi16(u, s);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
// The same for two signed byte vectors: |x|·(y with x's sign); x in -128..127, y in -127..127.
SMELT_AVX2 inline __m256 DotSigned(__m256i x, __m256i y) {
  return DotUnsigned(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

SMELT_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Block offsets (the structs only describe the layout: rows are read byte-wise).
constexpr size_t kQ8_0Qs = offsetof(BlockQ8_0, qs);
constexpr size_t kQ8_1S = offsetof(BlockQ8_1, s);
constexpr size_t kQ8_1Qs = offsetof(BlockQ8_1, qs);

// Weight types against Q8_0 activations: Codes(block) gives its 32 signed codes (offset taken off).
// Blocks are taken in pairs, each with its own accumulator, so that consecutive blocks'
// multiply-adds do not wait for each other.
template <class Block, __m256i (*Codes)(const uint8_t*)>
SMELT_AVX2 inline __m256 BlockTermQ8_0(const uint8_t* x, const uint8_t* y, __m256 acc) {
  const __m256 d = _mm256_set1_ps(LoadHalf(x + offsetof(Block, d)) * LoadHalf(y));
  return _mm256_fmadd_ps(d, DotSigned(Codes(x), Load32(y + kQ8_0Qs)), acc);
}
template <class Block, __m256i (*Codes)(const uint8_t*)>
SMELT_AVX2 float DotAgainstQ8_0(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* y = static_cast<const uint8_t*>(a);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < n / 32; i += 2, x += 2 * sizeof(Block), y += 2 * sizeof(BlockQ8_0)) {
    // Decoding streams each weight row once: ask for the bytes 2 KiB ahead (measured +6 % on Q4_0).
    _mm_prefetch(reinterpret_cast<const char*>(x) + 2048, _MM_HINT_T0);
    acc0 = BlockTermQ8_0<Block, Codes>(x, y, acc0);
    acc1 = BlockTermQ8_0<Block, Codes>(x + sizeof(Block), y + sizeof(BlockQ8_0), acc1);
  }
  if (i < n / 32) acc0 = BlockTermQ8_0<Block, Codes>(x, y, acc0);
  return HorizontalSum(_mm256_add_ps(acc0, acc1));
}

// BlockTermQ8_0 with the weight block's codes already unpacked.
template <class Block>
SMELT_AVX2 inline __m256 CodesTermQ8_0(const uint8_t* x, __m256i codes, const uint8_t* y, __m256 acc) {
  const __m256 d = _mm256_set1_ps(LoadHalf(x + offsetof(Block, d)) * LoadHalf(y));
  return _mm256_fmadd_ps(d, DotSigned(codes, Load32(y + kQ8_0Qs)), acc);
}

// One weight row against four Q8_0 activation rows (a + k·stride, k < 4): each block's codes are
// unpacked once and multiplied with the four rows' blocks. Per row the accumulators, their order
// and the final sum are those of DotAgainstQ8_0, so out[k] equals DotAgainstQ8_0(w, a + k·stride)
// bit for bit.
template <class Block, __m256i (*Codes)(const uint8_t*)>
SMELT_AVX2 void DotAgainstQ8_0x4(const void* w, const void* a, size_t stride, int64_t n, float* out) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* y = static_cast<const uint8_t*>(a);
  __m256 acc0[4], acc1[4];
  for (int k = 0; k < 4; ++k) acc0[k] = _mm256_setzero_ps(), acc1[k] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < n / 32; i += 2, x += 2 * sizeof(Block), y += 2 * sizeof(BlockQ8_0)) {
    const __m256i c0 = Codes(x), c1 = Codes(x + sizeof(Block));
    for (int k = 0; k < 4; ++k) {
      acc0[k] = CodesTermQ8_0<Block>(x, c0, y + k * stride, acc0[k]);
      acc1[k] = CodesTermQ8_0<Block>(x + sizeof(Block), c1, y + k * stride + sizeof(BlockQ8_0), acc1[k]);
    }
  }
  if (i < n / 32) {
    const __m256i c0 = Codes(x);
    for (int k = 0; k < 4; ++k) acc0[k] = CodesTermQ8_0<Block>(x, c0, y + k * stride, acc0[k]);
  }
  for (int k = 0; k < 4; ++k) out[k] = HorizontalSum(_mm256_add_ps(acc0[k], acc1[k]));
}

// Weight types with a minimum against Q8_1 activations: Codes(block) gives its 32 unsigned codes.
template <class Block, __m256i (*Codes)(const uint8_t*)>
SMELT_AVX2 inline __m256 BlockTermQ8_1(const uint8_t* x, const uint8_t* y, __m256 acc, float& mins) {
  const __m256 d = _mm256_set1_ps(LoadHalf(x + offsetof(Block, d)) * LoadHalf(y));
  mins += LoadHalf(x + offsetof(Block, m)) * LoadHalf(y + kQ8_1S);
  return _mm256_fmadd_ps(d, DotUnsigned(Codes(x), Load32(y + kQ8_1Qs)), acc);
}
template <class Block, __m256i (*Codes)(const uint8_t*)>
SMELT_AVX2 float DotAgainstQ8_1(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* y = static_cast<const uint8_t*>(a);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float mins0 = 0.0f, mins1 = 0.0f;
  int64_t i = 0;
  for (; i + 1 < n / 32; i += 2, x += 2 * sizeof(Block), y += 2 * sizeof(BlockQ8_1)) {
    PrefetchAhead<2 * sizeof(Block)>(x);
    acc0 = BlockTermQ8_1<Block, Codes>(x, y, acc0, mins0);
    acc1 = BlockTermQ8_1<Block, Codes>(x + sizeof(Block), y + sizeof(BlockQ8_1), acc1, mins1);
  }
  if (i < n / 32) acc0 = BlockTermQ8_1<Block, Codes>(x, y, acc0, mins0);
  return HorizontalSum(_mm256_add_ps(acc0, acc1)) + (mins0 + mins1);
}

// Each weight block's codes as 32 bytes in value order.
SMELT_AVX2 __m256i CodesQ8_0(const uint8_t* x) { return Load32(x + offsetof(BlockQ8_0, qs)); }
SMELT_AVX2 __m256i CodesQ4_0(const uint8_t* x) {
  return _mm256_sub_epi8(Nibbles(x + offsetof(BlockQ4_0, qs)), _mm256_set1_epi8(8));
}
SMELT_AVX2 __m256i CodesQ5_0(const uint8_t* x) {
  const __m256i q = _mm256_or_si256(Nibbles(x + offsetof(BlockQ5_0, qs)), FifthBits(x + offsetof(BlockQ5_0, qh)));
  return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
}
SMELT_AVX2 __m256i CodesIQ4_NL(const uint8_t* x) {
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues)));
  return _mm256_shuffle_epi8(table, Nibbles(x + offsetof(BlockIQ4_NL, qs)));
}
SMELT_AVX2 __m256i CodesQ4_1(const uint8_t* x) { return Nibbles(x + offsetof(BlockQ4_1, qs)); }
SMELT_AVX2 __m256i CodesQ5_1(const uint8_t* x) {
  return _mm256_or_si256(Nibbles(x + offsetof(BlockQ5_1, qs)), FifthBits(x + offsetof(BlockQ5_1, qh)));
}

// ---- k-quants against Q8_K: per super-block one vector of 8 int32 sums Σ scale_j·Σ code·q_a,
// then d·d_a times it, and the minimum (or code offset) term from the Q8_K block's bsums.

// 16 int16 lanes: the first 8 hold a, the last 8 b (scales of the two sub-blocks of 16 that a
// 32-value maddubs product covers).
SMELT_AVX2 inline __m256i ScalePair(int a, int b) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((int16_t)a)), _mm_set1_epi16((int16_t)b), 1);
}
// Σ per int32 lane of scale · (u·s pairs): u unsigned, s signed bytes, scales int16 per lane.
SMELT_AVX2 inline __m256i ScaledSums(__m256i u, __m256i s, __m256i scales) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scales);
}
// Bits `shift`.. of every byte, masked by `mask` (bytes shifted in 16-bit lanes, then masked).
SMELT_AVX2 inline __m256i BitsAt(__m256i v, int shift, int mask) {
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8((char)mask));
}
SMELT_AVX2 inline float LoadF32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
SMELT_AVX2 inline int16_t LoadI16(const uint8_t* p) {
  int16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

constexpr size_t kQ8_KQs = offsetof(BlockQ8_K, qs);
constexpr size_t kQ8_KSums = offsetof(BlockQ8_K, bsums);

// Sum of the Q8_K block's 16 bsums weighted by w[16].
SMELT_AVX2 inline int WeightedBsums(const uint8_t* y, const int* w) {
  int s = 0;
  for (int j = 0; j < 16; ++j) s += w[j] * LoadI16(y + kQ8_KSums + 2 * j);
  return s;
}

// The sum of 8 int32 lanes.
SMELT_AVX2 inline int SumLanes(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

SMELT_AVX2 float DotQ2_K(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* y = static_cast<const uint8_t*>(a);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i, x += sizeof(BlockQ2_K), y += sizeof(BlockQ8_K)) {
    PrefetchAhead<sizeof(BlockQ2_K)>(x);
    const float dy = LoadF32(y);
    const uint8_t* scales = x + offsetof(BlockQ2_K, scales);
    __m256i sums = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q = Load32(x + offsetof(BlockQ2_K, qs) + 32 * h);
      for (int k = 0; k < 4; ++k) {  // values 128h + 32k + l: sub-blocks 8h + 2k and 8h + 2k + 1
        const int j = 8 * h + 2 * k;
        sums = _mm256_add_epi32(sums, ScaledSums(BitsAt(q, 2 * k, 3), Load32(y + kQ8_KQs + 16 * j),
                                                 ScalePair(scales[j] & 0x0F, scales[j + 1] & 0x0F)));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * LoadHalf(x + offsetof(BlockQ2_K, d))), _mm256_cvtepi32_ps(sums), acc);
    // Σ_j bsums[j]·m_j, the 16 minimums the high nibbles of the scale bytes: one madd.
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales));
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0F)));
    mins += dy * LoadHalf(x + offsetof(BlockQ2_K, dmin)) * (float)SumLanes(_mm256_madd_epi16(Load32(y + kQ8_KSums), m16));
  }
  return HorizontalSum(acc) - mins;
}

// Q3_K's 16 6-bit scales (Q3KScale of formats/k_quants.h), four at a time in 32-bit words: with
// the 12 scale bytes as words u0, u1, u2, scale j has its low 4 bits in the low (j < 8) or high
// (j >= 8) nibble of byte j % 8 and its top 2 bits at bit 2·(j / 4) of byte 8 + j % 4; stored
// with an offset of 32.
SMELT_AVX2 inline void Q3Scales(const uint8_t* q, int* sc) {
  uint32_t u[3];
  std::memcpy(u, q, sizeof u);
  const uint32_t nibble = 0x0F0F0F0F, top2 = 0x03030303;
  const uint32_t words[4] = {(u[0] & nibble) | (u[2] & top2) << 4, (u[1] & nibble) | ((u[2] >> 2) & top2) << 4,
                             ((u[0] >> 4) & nibble) | ((u[2] >> 4) & top2) << 4,
                             ((u[1] >> 4) & nibble) | ((u[2] >> 6) & top2) << 4};
  uint8_t b[16];
  std::memcpy(b, words, sizeof b);
  for (int j = 0; j < 16; ++j) sc[j] = b[j] - 32;
}

SMELT_AVX2 float DotQ3_K(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* y = static_cast<const uint8_t*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i, x += sizeof(BlockQ3_K), y += sizeof(BlockQ8_K)) {
    PrefetchAhead<sizeof(BlockQ3_K)>(x);
    int sc[16];
    Q3Scales(x + offsetof(BlockQ3_K, scales), sc);
    const __m256i hmask = Load32(x + offsetof(BlockQ3_K, hmask));
    __m256i sums = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q = Load32(x + offsetof(BlockQ3_K, qs) + 32 * h);
      for (int k = 0; k < 4; ++k) {  // code = low two bits − 4 where the hmask bit is clear
        const int j = 8 * h + 2 * k;
        const __m256i ya = Load32(y + kQ8_KQs + 16 * j);
        const __m256i minus4 = _mm256_slli_epi16(_mm256_xor_si256(BitsAt(hmask, 4 * h + k, 1), _mm256_set1_epi8(1)), 2);
        const __m256i pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(BitsAt(q, 2 * k, 3), ya), _mm256_maddubs_epi16(minus4, ya));
        sums = _mm256_add_epi32(sums, _mm256_madd_epi16(pairs, ScalePair(sc[j], sc[j + 1])));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(LoadF32(y) * LoadHalf(x + offsetof(BlockQ3_K, d))), _mm256_cvtepi32_ps(sums), acc);
  }
  return HorizontalSum(acc);
}

// Q4_K/Q5_K's 6-bit scales and minimums, four at a time in 32-bit words: with the 12 scale bytes
// as words u0, u1, u2, scales 0..3 are the low 6 bits of u0's bytes, minimums 0..3 those of u1's,
// and scales (minimums) 4..7 the low (high) nibbles of u2's bytes with the top 2 bits of u0's
// (u1's) bytes above them. sc and m get the 8 values as bytes.
SMELT_AVX2 inline void K4Scales(const uint8_t* q, uint8_t* sc, uint8_t* m) {
  uint32_t u[3];
  std::memcpy(u, q, sizeof u);
  const uint32_t low6 = 0x3F3F3F3F, nibble = 0x0F0F0F0F, top2 = 0x03030303;
  const uint32_t s[2] = {u[0] & low6, (u[2] & nibble) | ((u[0] >> 6) & top2) << 4};
  const uint32_t mins[2] = {u[1] & low6, ((u[2] >> 4) & nibble) | ((u[1] >> 6) & top2) << 4};
  std::memcpy(sc, s, 8);
  std::memcpy(m, mins, 8);
}

// Σ_j bsums[j]·m[j / 2] over a Q8_K block's 16 sums of 16 codes: the pairs of sums that share a
// minimum added (madd with ones), times the 8 minimums, summed across lanes. Exact integers.
SMELT_AVX2 inline int MinimumTerm(const uint8_t* y, const uint8_t* m) {
  const __m256i pairs = _mm256_madd_epi16(Load32(y + kQ8_KSums), _mm256_set1_epi16(1));
  int64_t m8;
  std::memcpy(&m8, m, sizeof m8);
  return SumLanes(_mm256_mullo_epi32(pairs, _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(m8))));
}

// Q4_K (kFifthBit false) and Q5_K: 8 sub-blocks of 32; chunk c of 32 code bytes holds
// sub-block 2c in its low nibbles and 2c + 1 in its high ones.
template <class Block, bool kFifthBit>
SMELT_AVX2 float DotK4(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* y = static_cast<const uint8_t*>(a);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i, x += sizeof(Block), y += sizeof(BlockQ8_K)) {
    PrefetchAhead<sizeof(Block)>(x);
    const float dy = LoadF32(y);
    uint8_t sc[8], m[8];
    K4Scales(x + offsetof(Block, scales), sc, m);
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kFifthBit) qh = Load32(x + offsetof(BlockQ5_K, qh));
    __m256i sums = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = Load32(x + offsetof(Block, qs) + 32 * c);
      __m256i lo = _mm256_and_si256(q, _mm256_set1_epi8(0x0F)), hi = BitsAt(q, 4, 0x0F);
      if constexpr (kFifthBit) {
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(BitsAt(qh, 2 * c, 1), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(BitsAt(qh, 2 * c + 1, 1), 4));
      }
      sums = _mm256_add_epi32(sums, ScaledSums(lo, Load32(y + kQ8_KQs + 64 * c), _mm256_set1_epi16((int16_t)sc[2 * c])));
      sums = _mm256_add_epi32(sums, ScaledSums(hi, Load32(y + kQ8_KQs + 64 * c + 32), _mm256_set1_epi16((int16_t)sc[2 * c + 1])));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * LoadHalf(x + offsetof(Block, d))), _mm256_cvtepi32_ps(sums), acc);
    mins += dy * LoadHalf(x + offsetof(Block, dmin)) * (float)MinimumTerm(y, m);
  }
  return HorizontalSum(acc) - mins;
}

// Q6_K: codes 0..63 multiplied unsigned, the offset 32 taken off through the bsums.
SMELT_AVX2 float DotQ6_K(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* y = static_cast<const uint8_t*>(a);
  __m256 acc = _mm256_setzero_ps();
  float offsets = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i, x += sizeof(BlockQ6_K), y += sizeof(BlockQ8_K)) {
    PrefetchAhead<sizeof(BlockQ6_K)>(x);
    const auto* scales = reinterpret_cast<const int8_t*>(x + offsetof(BlockQ6_K, scales));
    int sc[16];
    for (int j = 0; j < 16; ++j) sc[j] = scales[j];
    __m256i sums = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = Load32(x + offsetof(BlockQ6_K, ql) + 64 * h);
      const __m256i ql1 = Load32(x + offsetof(BlockQ6_K, ql) + 64 * h + 32);
      const __m256i qh = Load32(x + offsetof(BlockQ6_K, qh) + 32 * h);
      for (int p = 0; p < 4; ++p) {  // values 128h + 32p + l: low (p < 2) or high nibbles of ql0/ql1
        const __m256i low = BitsAt(p % 2 ? ql1 : ql0, p < 2 ? 0 : 4, 0x0F);
        const __m256i code = _mm256_or_si256(low, _mm256_slli_epi16(BitsAt(qh, 2 * p, 3), 4));
        const int j = 8 * h + 2 * p;
        sums = _mm256_add_epi32(sums, ScaledSums(code, Load32(y + kQ8_KQs + 16 * j), ScalePair(sc[j], sc[j + 1])));
      }
    }
    const float d = LoadF32(y) * LoadHalf(x + offsetof(BlockQ6_K, d));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sums), acc);
    // Σ_j bsums[j]·scale_j in scalar code, which runs beside the vector work (one madd instead
    // measured no faster here: this kernel is bound by its vector instructions).
    offsets += d * (float)(32 * WeightedBsums(y, sc));
  }
  return HorizontalSum(acc) - offsets;
}

// Eight halves at p widened to f32.
SMELT_AVX2 inline __m256 LoadHalf8(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

SMELT_AVX2 inline __m256 LoadBf16x8(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// f16 weights · f16 activations (ggml's vec_dot_f16), and the same for bf16: both rows widened
// to f32 eight values at a time, four independent FMA accumulators, summed across lanes at the
// end; a tail of fewer than eight values one at a time.
template <__m256 (*Load8)(const uint8_t*), float (*Load1)(const uint8_t*)>
SMELT_AVX2 float DotHalves(const void* w_row, const void* a_row, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w_row);
  const auto* y = static_cast<const uint8_t*>(a_row);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    // Each step reads one cache line of the weight row (220M F16 decode, 1 thread, with the
    // prefetch: 35.7 -> 40.9 t/s).
    PrefetchAhead<64>(x + 2 * i);
    for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(Load8(x + 2 * (i + 8 * k)), Load8(y + 2 * (i + 8 * k)), acc[k]);
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(Load8(x + 2 * i), Load8(y + 2 * i), acc[0]);
  float sum = HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += Load1(x + 2 * i) * Load1(y + 2 * i);
  return sum;
}

// w8a8 · i8_pc: |q_w| times q_a with q_w's sign (codes in −127..127, so pair sums fit in int16),
// widened to int32 per 32 codes; the integer sum scaled once, as the reference does.
SMELT_AVX2 float DotW8A8(const void* w_row, const void* a_row, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w_row);
  const auto* y = static_cast<const uint8_t*>(a_row);
  float dw, da;
  std::memcpy(&dw, x, sizeof dw);
  std::memcpy(&da, y, sizeof da);
  const uint8_t* qw = x + sizeof(RowHeaderI8);
  const uint8_t* qa = y + sizeof(RowHeaderI8);
  __m256i acc = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    PrefetchAhead<32>(qw + i);
    const __m256i w = Load32(qw + i), a = Load32(qa + i);
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)), ones));
  }
  int32_t sum = SumLanes(acc);
  for (; i < n; ++i) sum += (int8_t)qw[i] * (int8_t)qa[i];
  return (float)sum * (dw * da);
}

// Eight int8 codes widened to f32.
SMELT_AVX2 inline __m256 Codes8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// i8_pc · f32 activations: codes widened to f32 eight at a time, four FMA accumulators, the row
// scale applied once at the end (as the reference does, which sums in order).
SMELT_AVX2 float DotI8PC(const void* w_row, const void* a_row, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w_row);
  const auto* a = static_cast<const float*>(a_row);
  float dw;
  std::memcpy(&dw, x, sizeof dw);
  const uint8_t* qw = x + sizeof(RowHeaderI8);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    PrefetchAhead<32>(qw + i);
    for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(Codes8(qw + i + 8 * k), _mm256_loadu_ps(a + i + 8 * k), acc[k]);
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(Codes8(qw + i), _mm256_loadu_ps(a + i), acc[0]);
  float sum = HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += (float)(int8_t)qw[i] * a[i];
  return dw * sum;
}

SMELT_AVX2 inline float LoadBf16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return Bf16ToFloat(h);
}

}  // namespace

const Avx2Kernels* Avx2() {
  static constexpr Avx2Kernels kAvx2{DotAgainstQ8_0<BlockQ8_0, CodesQ8_0>,   DotAgainstQ8_0<BlockQ4_0, CodesQ4_0>,
                                     DotAgainstQ8_0<BlockQ5_0, CodesQ5_0>,   DotAgainstQ8_0<BlockIQ4_NL, CodesIQ4_NL>,
                                     DotAgainstQ8_1<BlockQ4_1, CodesQ4_1>,   DotAgainstQ8_1<BlockQ5_1, CodesQ5_1>,
                                     DotQ2_K,
                                     DotQ3_K,
                                     DotK4<BlockQ4_K, false>,
                                     DotK4<BlockQ5_K, true>,
                                     DotQ6_K,
                                     DotHalves<LoadHalf8, LoadHalf>,
                                     DotHalves<LoadBf16x8, LoadBf16>,
                                     DotW8A8,
                                     DotI8PC,
                                     DotAgainstQ8_0x4<BlockQ8_0, CodesQ8_0>,
                                     DotAgainstQ8_0x4<BlockQ4_0, CodesQ4_0>,
                                     DotAgainstQ8_0x4<BlockQ5_0, CodesQ5_0>,
                                     DotAgainstQ8_0x4<BlockIQ4_NL, CodesIQ4_NL>};
  return &kAvx2;
}

}  // namespace smelt::qdot

#else

namespace smelt::qdot {
const Avx2Kernels* Avx2() { return nullptr; }
}  // namespace smelt::qdot

#endif
