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

#include <algorithm>
#include <array>
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
#include "formats/sparse24.h"
#include "formats/sparse_mask.h"
#include "kernels/bits_avx2.h"
#include "kernels/horizontal_sum_avx2.h"
#include "kernels/kquant_row_avx2.h"
#include "kernels/sparse_w4.h"

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

// A super-block's 16 sub-block scales s[0..15] as int16, served in pairs: pair(j) (j even) has
// s[j] in its first 8 lanes and s[j + 1] in the last 8 (the scales of the two sub-blocks of 16
// that a 32-value maddubs product covers), one byte shuffle each.
struct ScalePairs {
  __m256i lo, hi;  // s[0..7] and s[8..15], each in both 128-bit lanes
  // s16: the scales widened to int16 in order (s[0..7] in the low lane, as _mm256_cvtepi8_epi16).
  SMELT_AVX2 explicit ScalePairs(__m256i s16)
      : lo(_mm256_permute2x128_si256(s16, s16, 0x00)), hi(_mm256_permute2x128_si256(s16, s16, 0x11)) {}
  SMELT_AVX2 __m256i pair(int j) const {
    const int i = j % 8;  // even: s[j] and s[j + 1] in the same half
    const __m256i take = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((int16_t)(2 * i | (2 * i + 1) << 8))),
                                                 _mm_set1_epi16((int16_t)((2 * i + 2) | (2 * i + 3) << 8)), 1);
    return _mm256_shuffle_epi8(j < 8 ? lo : hi, take);
  }
};
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

// The W × A results of a k-quant block kernel: per (weight row, activation row) the vector sums and
// the scalar term taken off at the end.
template <int W, int A>
struct KSums {
  __m256 acc[W][A];
  float term[W][A];
  SMELT_AVX2 KSums() {
    for (int r = 0; r < W; ++r)
      for (int k = 0; k < A; ++k) acc[r][k] = _mm256_setzero_ps(), term[r][k] = 0.0f;
  }
  SMELT_AVX2 void Finish(float* out) const {
    for (int r = 0; r < W; ++r)
      for (int k = 0; k < A; ++k) out[r * A + k] = HorizontalSum(acc[r][k]) - term[r][k];
  }
};

// body(i, r, x) for super-block i of weight row r (w + r·w_stride) at x, super-block by
// super-block and row by row within one, each asked for ahead.
template <class Block, int W, class Body>
SMELT_AVX2 inline void ForEachSuperBlock(const void* w, size_t w_stride, int64_t n, Body&& body) {
  for (int64_t i = 0; i < n / kQK_K; ++i)
    for (int r = 0; r < W; ++r) {
      const uint8_t* x = static_cast<const uint8_t*>(w) + r * w_stride + i * sizeof(Block);
      PrefetchAhead<sizeof(Block)>(x);
      body(i, r, x);
    }
}

// Q2_K: W weight rows (w + r·w_stride) against A Q8_K rows (a + k·stride) into out[r·A + k]: each
// super-block's codes and scales unpacked once for all A rows, and per (weight row, activation
// row) the single-row kernel's operations (every form gives single calls' bits; several weight
// rows per call keep several weight streams in flight when decoding).
template <int W, int A>
SMELT_AVX2 void DotQ2_KBlock(const void* w, size_t w_stride, const void* a, size_t stride, int64_t n, float* out) {
  KSums<W, A> s;
  ForEachSuperBlock<BlockQ2_K, W>(w, w_stride, n, [&](int64_t i, int r, const uint8_t* x) SMELT_AVX2 {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + offsetof(BlockQ2_K, scales)));
    const ScalePairs pairs(_mm256_cvtepu8_epi16(_mm_and_si128(sc, _mm_set1_epi8(0x0F))));
    // The 16 minimums, the high nibbles of the scale bytes.
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0F)));
    __m256i codes[8];  // values 128h + 32k + l: sub-blocks 8h + 2k and 8h + 2k + 1
    for (int h = 0; h < 2; ++h) {
      const __m256i q = Load32(x + offsetof(BlockQ2_K, qs) + 32 * h);
      for (int k = 0; k < 4; ++k) codes[4 * h + k] = BitsAt(q, 2 * k, 3);
    }
    const float d = LoadHalf(x + offsetof(BlockQ2_K, d)), dmin = LoadHalf(x + offsetof(BlockQ2_K, dmin));
    for (int k = 0; k < A; ++k) {
      const uint8_t* y = static_cast<const uint8_t*>(a) + k * stride + i * sizeof(BlockQ8_K);
      const float dy = LoadF32(y);
      __m256i sums = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h)
        for (int c = 0; c < 4; ++c) {
          const int j = 8 * h + 2 * c;
          sums = _mm256_add_epi32(sums, ScaledSums(codes[4 * h + c], Load32(y + kQ8_KQs + 16 * j), pairs.pair(j)));
        }
      s.acc[r][k] = _mm256_fmadd_ps(_mm256_set1_ps(dy * d), _mm256_cvtepi32_ps(sums), s.acc[r][k]);
      // Σ_j bsums[j]·m_j: one madd.
      s.term[r][k] += dy * dmin * (float)SumLanes(_mm256_madd_epi16(Load32(y + kQ8_KSums), m16));
    }
  });
  s.Finish(out);
}

SMELT_AVX2 float DotQ3_K(const void* w, const void* a, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* y = static_cast<const uint8_t*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i, x += sizeof(BlockQ3_K), y += sizeof(BlockQ8_K)) {
    PrefetchAhead<sizeof(BlockQ3_K)>(x);
    const ScalePairs pairs(kquant_row::Q3Scales(x + offsetof(BlockQ3_K, scales)));
    const __m256i hmask = Load32(x + offsetof(BlockQ3_K, hmask));
    __m256i sums = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q = Load32(x + offsetof(BlockQ3_K, qs) + 32 * h);
      for (int k = 0; k < 4; ++k) {  // code = low two bits − 4 where the hmask bit is clear
        const int j = 8 * h + 2 * k;
        const __m256i ya = Load32(y + kQ8_KQs + 16 * j);
        const __m256i minus4 = _mm256_slli_epi16(_mm256_xor_si256(BitsAt(hmask, 4 * h + k, 1), _mm256_set1_epi8(1)), 2);
        const __m256i products = _mm256_sub_epi16(_mm256_maddubs_epi16(BitsAt(q, 2 * k, 3), ya), _mm256_maddubs_epi16(minus4, ya));
        sums = _mm256_add_epi32(sums, _mm256_madd_epi16(products, pairs.pair(j)));
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
// sub-block 2c in its low nibbles and 2c + 1 in its high ones. W weight rows (w + r·w_stride)
// against A Q8_K rows (a + k·stride) into out[r·A + k]: each super-block's codes and scales are
// unpacked once for all A rows, and per (weight row, activation row) the operations do not depend
// on W or A (every form gives single calls' bits). Several weight rows per call (decoding) keep
// several weight streams in flight.
template <class Block, bool kFifthBit, int W, int A>
SMELT_AVX2 void DotK4Block(const void* w, size_t w_stride, const void* a, size_t stride, int64_t n, float* out) {
  KSums<W, A> s;
  ForEachSuperBlock<Block, W>(w, w_stride, n, [&](int64_t i, int r, const uint8_t* x) SMELT_AVX2 {
    uint8_t sc[8], m[8];
    K4Scales(x + offsetof(Block, scales), sc, m);
    // The 8 sub-block scales as int16 in both 128-bit lanes: each broadcast is one byte shuffle.
    int64_t sc8;
    std::memcpy(&sc8, sc, sizeof sc8);
    const __m256i scales16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc8)));
    auto scale = [&](int j) SMELT_AVX2 {
      return _mm256_shuffle_epi8(scales16, _mm256_set1_epi16((int16_t)(2 * j | (2 * j + 1) << 8)));
    };
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kFifthBit) qh = Load32(x + offsetof(BlockQ5_K, qh));
    __m256i lo[4], hi[4];
    for (int c = 0; c < 4; ++c) {
      const __m256i q = Load32(x + offsetof(Block, qs) + 32 * c);
      lo[c] = _mm256_and_si256(q, _mm256_set1_epi8(0x0F)), hi[c] = BitsAt(q, 4, 0x0F);
      if constexpr (kFifthBit) {
        lo[c] = _mm256_or_si256(lo[c], BitToBit4(qh, 2 * c));
        hi[c] = _mm256_or_si256(hi[c], BitToBit4(qh, 2 * c + 1));
      }
    }
    const float d = LoadHalf(x + offsetof(Block, d)), dmin = LoadHalf(x + offsetof(Block, dmin));
    for (int k = 0; k < A; ++k) {
      const uint8_t* y = static_cast<const uint8_t*>(a) + k * stride + i * sizeof(BlockQ8_K);
      const float dy = LoadF32(y);
      __m256i sums = _mm256_setzero_si256();
      for (int c = 0; c < 4; ++c) {
        sums = _mm256_add_epi32(sums, ScaledSums(lo[c], Load32(y + kQ8_KQs + 64 * c), scale(2 * c)));
        sums = _mm256_add_epi32(sums, ScaledSums(hi[c], Load32(y + kQ8_KQs + 64 * c + 32), scale(2 * c + 1)));
      }
      s.acc[r][k] = _mm256_fmadd_ps(_mm256_set1_ps(dy * d), _mm256_cvtepi32_ps(sums), s.acc[r][k]);
      s.term[r][k] += dy * dmin * (float)MinimumTerm(y, m);
    }
  });
  s.Finish(out);
}

// Q6_K: codes 0..63 multiplied unsigned, the offset 32 taken off through the bsums. W weight rows
// (w + r·w_stride) against A Q8_K rows (a + k·stride) into out[r·A + k], each super-block's codes
// unpacked once for the A rows; per (weight row, activation row) the single-row kernel's
// operations (the single-row kernel is W = A = 1).
template <int W, int A>
SMELT_AVX2 void DotQ6_KBlock(const void* w, size_t w_stride, const void* a, size_t stride, int64_t n, float* out) {
  KSums<W, A> s;
  ForEachSuperBlock<BlockQ6_K, W>(w, w_stride, n, [&](int64_t i, int r, const uint8_t* x) SMELT_AVX2 {
    const auto* scales = reinterpret_cast<const int8_t*>(x + offsetof(BlockQ6_K, scales));
    int sc[16];
    for (int j = 0; j < 16; ++j) sc[j] = scales[j];
    const ScalePairs pairs(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales))));
    __m256i code[8];  // values 128h + 32p + l: low (p < 2) or high nibbles of ql0/ql1, two bits of qh
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = Load32(x + offsetof(BlockQ6_K, ql) + 64 * h);
      const __m256i ql1 = Load32(x + offsetof(BlockQ6_K, ql) + 64 * h + 32);
      const __m256i qh = Load32(x + offsetof(BlockQ6_K, qh) + 32 * h);
      for (int p = 0; p < 4; ++p) {
        const __m256i low = BitsAt(p % 2 ? ql1 : ql0, p < 2 ? 0 : 4, 0x0F);
        code[4 * h + p] = _mm256_or_si256(low, _mm256_slli_epi16(BitsAt(qh, 2 * p, 3), 4));
      }
    }
    const float dx = LoadHalf(x + offsetof(BlockQ6_K, d));
    for (int k = 0; k < A; ++k) {
      const uint8_t* y = static_cast<const uint8_t*>(a) + k * stride + i * sizeof(BlockQ8_K);
      __m256i sums = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h)
        for (int p = 0; p < 4; ++p) {
          const int j = 8 * h + 2 * p;
          sums = _mm256_add_epi32(sums, ScaledSums(code[4 * h + p], Load32(y + kQ8_KQs + 16 * j), pairs.pair(j)));
        }
      const float d = LoadF32(y) * dx;
      s.acc[r][k] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sums), s.acc[r][k]);
      // Σ_j bsums[j]·scale_j in scalar code, which runs beside the vector work (one madd instead
      // measured no faster here: this kernel is bound by its vector instructions).
      s.term[r][k] += d * (float)(32 * WeightedBsums(y, sc));
    }
  });
  s.Finish(out);
}

// The forms every W × A k-quant block kernel gives (K::kRun<W, A>): one row and token, four tokens,
// four weight rows.
struct Q2K {
  template <int W, int A>
  static constexpr auto kRun = DotQ2_KBlock<W, A>;
};
struct Q6K {
  template <int W, int A>
  static constexpr auto kRun = DotQ6_KBlock<W, A>;
};
template <class Block, bool kFifthBit>
struct K4 {
  template <int W, int A>
  static constexpr auto kRun = DotK4Block<Block, kFifthBit, W, A>;
};

template <class K>
SMELT_AVX2 float KQuantDot(const void* w, const void* a, int64_t n) {
  float out;
  K::template kRun<1, 1>(w, 0, a, 0, n, &out);
  return out;
}
template <class K>
SMELT_AVX2 void KQuantDotX4(const void* w, const void* a, size_t stride, int64_t n, float* out) {
  K::template kRun<1, 4>(w, 0, a, stride, n, out);
}
template <class K>
SMELT_AVX2 void KQuantRows4(const void* w_rows, size_t w_stride, const void* a, int64_t n, float* out) {
  K::template kRun<4, 1>(w_rows, w_stride, a, 0, n, out);
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
  const I8RowView wr = ViewI8Row(w_row), ar = ViewI8Row(a_row);
  const uint8_t *qw = wr.codes, *qa = ar.codes;
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
  return (float)sum * (wr.d * ar.d);
}

// Eight f32 values at p, at any alignment.
SMELT_AVX2 inline __m256 LoadF32x8(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }

// Eight int8 codes widened to f32.
SMELT_AVX2 inline __m256 Codes8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// i8_pc · f32 activations: codes widened to f32 eight at a time, four FMA accumulators, the row
// scale applied once at the end (as the reference does, which sums in order).
SMELT_AVX2 float DotI8PC(const void* w_row, const void* a_row, int64_t n) {
  const auto* x = static_cast<const uint8_t*>(w_row);
  const auto* a = static_cast<const uint8_t*>(a_row);  // f32 values at any alignment
  float dw;
  std::memcpy(&dw, x, sizeof dw);
  const uint8_t* qw = x + sizeof(RowHeaderI8);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    PrefetchAhead<32>(qw + i);
    for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(Codes8(qw + i + 8 * k), LoadF32x8(a + 4 * (i + 8 * k)), acc[k]);
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(Codes8(qw + i), LoadF32x8(a + 4 * i), acc[0]);
  float sum = HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) {
    float v;
    std::memcpy(&v, a + 4 * i, sizeof v);
    sum += (float)(int8_t)qw[i] * v;
  }
  return dw * sum;
}

// ---- sparse weights against Q8_0 ----

// Two 16-byte loads as the two lanes of one register.
SMELT_AVX2 inline __m256i Load16x2(const uint8_t* lo, const uint8_t* hi) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo))),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi)), 1);
}

// 2:4 blocks, two per step, one per 128-bit lane: the 16 kept codes of a block against the 16
// activation bytes at their positions, gathered with one byte shuffle per half block. Kept value
// k's position in its half (16 activations) is 4·((k % 8) / 2) + p_k; p_k comes from the index
// word shifted right by 2·(k / 4) in 32-bit lane k / 4 (formats/sparse24.h's bit order).
SMELT_AVX2 inline __m256i S24Shuffle(const uint8_t* x0, const uint8_t* x1) {
  const __m256i words = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi32((int)LoadU32(x0))),
                                                _mm_set1_epi32((int)LoadU32(x1)), 1);
  const __m256i p = _mm256_and_si256(_mm256_srlv_epi32(words, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6)), _mm256_set1_epi8(3));
  const __m256i group = _mm256_setr_epi8(0, 0, 4, 4, 8, 8, 12, 12, 0, 0, 4, 4, 8, 8, 12, 12, 0, 0, 4, 4, 8, 8, 12, 12,
                                         0, 0, 4, 4, 8, 8, 12, 12);
  return _mm256_add_epi8(p, group);
}

SMELT_AVX2 __m256i S24CodesQ8(const uint8_t* x0, const uint8_t* x1) {
  return Load16x2(x0 + offsetof(BlockS24Q8, qs), x1 + offsetof(BlockS24Q8, qs));
}
// Kept codes 0..7 are the low nibbles of the 8 code bytes, 8..15 the high ones: the 8 bytes
// loaded into both halves of a lane, the upper half shifted right by 4, masked; minus 8.
SMELT_AVX2 __m256i S24CodesQ4(const uint8_t* x0, const uint8_t* x1) {
  const auto* p0 = reinterpret_cast<const double*>(x0 + offsetof(BlockS24Q4, qs));
  const auto* p1 = reinterpret_cast<const double*>(x1 + offsetof(BlockS24Q4, qs));
  const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_castpd_si128(_mm_loaddup_pd(p0))),
                                            _mm_castpd_si128(_mm_loaddup_pd(p1)), 1);
  const __m256i codes = _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 4, 0, 4)), _mm256_set1_epi8(0x0F));
  return _mm256_sub_epi8(codes, _mm256_set1_epi8(8));
}

// The weight side of two 2:4 blocks (lanes 0 and 1): the activation gather control and the codes.
struct S24Weights {
  __m256i ctrl, codes;
};
template <class Block, __m256i (*Codes)(const uint8_t*, const uint8_t*)>
SMELT_AVX2 inline S24Weights S24Unpack(const uint8_t* x0, const uint8_t* x1) {
  return {S24Shuffle(x0 + offsetof(Block, idx), x1 + offsetof(Block, idx)), Codes(x0, x1)};
}

// acc + the terms of two 2:4 weight blocks (unpacked as w) against Q8_0 blocks y0, y1 (lanes
// 0..3: block 0, 4..7: block 1), d holding the two blocks' d_w·d_a in those lanes.
SMELT_AVX2 inline __m256 S24Term(const S24Weights& w, __m256 d, const uint8_t* y0, const uint8_t* y1, __m256 acc) {
  const __m256i lo = Load16x2(y0 + kQ8_0Qs, y1 + kQ8_0Qs), hi = Load16x2(y0 + kQ8_0Qs + 16, y1 + kQ8_0Qs + 16);
  const __m256i act = _mm256_blend_epi32(_mm256_shuffle_epi8(lo, w.ctrl), _mm256_shuffle_epi8(hi, w.ctrl), 0xCC);
  return _mm256_fmadd_ps(d, DotSigned(w.codes, act), acc);
}

// Four fp16 values at p, p + stride, p + 2·stride, p + 3·stride as f32 (assembled in a 64-bit
// integer register, one conversion).
SMELT_AVX2 inline __m128 Halves4(const uint8_t* p, size_t stride) {
  uint16_t h[4];
  for (int k = 0; k < 4; ++k) std::memcpy(&h[k], p + k * stride, 2);
  uint64_t v;
  std::memcpy(&v, h, sizeof v);
  return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)v));
}

// Lanes 0..3 s[i], lanes 4..7 s[i + 1] (i = 0 or 2).
SMELT_AVX2 inline __m256 PairScales(__m128 s, int i) {
  return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s), _mm256_setr_epi32(i, i, i, i, i + 1, i + 1, i + 1, i + 1));
}

// The pair scales of blocks x0, x1 against y0, y1 (`second` false: block 1 is not there, scale 0).
template <class Block>
SMELT_AVX2 inline __m256 S24PairScale(const uint8_t* x0, const uint8_t* x1, const uint8_t* y0, const uint8_t* y1,
                                      bool second) {
  const float d0 = LoadHalf(x0 + offsetof(Block, d)) * LoadHalf(y0);
  const float d1 = second ? LoadHalf(x1 + offsetof(Block, d)) * LoadHalf(y1) : 0.0f;
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_set1_ps(d0)), _mm_set1_ps(d1), 1);
}

// 2:4 rows against `rows` Q8_0 rows (a + k·stride), four blocks per step: the weight blocks'
// gather controls, codes and scales are unpacked once and the four scales d_w·d_a of a row
// converted together. Per activation row the operations do not depend on `rows`, so the
// four-row kernel's results equal the single-row kernel's bit for bit.
template <class Block, __m256i (*Codes)(const uint8_t*, const uint8_t*), int rows>
SMELT_AVX2 void DotS24Rows(const void* w, const void* a, size_t stride, int64_t n, float* out) {
  constexpr size_t B = sizeof(Block), A = sizeof(BlockQ8_0);
  const auto* x = static_cast<const uint8_t*>(w);
  const auto* y = static_cast<const uint8_t*>(a);
  __m256 acc0[rows], acc1[rows];
  for (int k = 0; k < rows; ++k) acc0[k] = acc1[k] = _mm256_setzero_ps();
  const int64_t blocks = n / kQKS24;
  int64_t i = 0;
  for (; i + 3 < blocks; i += 4, x += 4 * B, y += 4 * A) {
    PrefetchAhead<4 * B>(x);
    const S24Weights u01 = S24Unpack<Block, Codes>(x, x + B), u23 = S24Unpack<Block, Codes>(x + 2 * B, x + 3 * B);
    const __m128 dw = Halves4(x + offsetof(Block, d), B);
    for (int k = 0; k < rows; ++k) {
      const uint8_t* yk = y + k * stride;
      const __m128 d = _mm_mul_ps(dw, Halves4(yk, A));
      acc0[k] = S24Term(u01, PairScales(d, 0), yk, yk + A, acc0[k]);
      acc1[k] = S24Term(u23, PairScales(d, 2), yk + 2 * A, yk + 3 * A, acc1[k]);
    }
  }
  for (; i < blocks; i += 2, x += 2 * B, y += 2 * A) {  // the last one to three blocks
    const bool second = i + 1 < blocks;
    const uint8_t* x1 = second ? x + B : x;
    const S24Weights u = S24Unpack<Block, Codes>(x, x1);
    for (int k = 0; k < rows; ++k) {
      const uint8_t *y0 = y + k * stride, *y1 = second ? y0 + A : y0;
      acc0[k] = S24Term(u, S24PairScale<Block>(x, x1, y0, y1, second), y0, y1, acc0[k]);
    }
  }
  for (int k = 0; k < rows; ++k) out[k] = HorizontalSum(_mm256_add_ps(acc0[k], acc1[k]));
}

template <class Block, __m256i (*Codes)(const uint8_t*, const uint8_t*)>
SMELT_AVX2 float DotS24(const void* w, const void* a, int64_t n) {
  float out;
  DotS24Rows<Block, Codes, 1>(w, a, 0, n, &out);
  return out;
}

template <class Block, __m256i (*Codes)(const uint8_t*, const uint8_t*)>
SMELT_AVX2 void DotS24x4(const void* w, const void* a, size_t stride, int64_t n, float* out) {
  DotS24Rows<Block, Codes, 4>(w, a, stride, n, out);
}

// Bitmask rows: per block of 32 each mask byte's codes are loaded at its first code and spread to
// the byte's set positions by one byte shuffle (controls from a 256-entry table; 0 where unset),
// then a dense Q8_0 block term.
// (The row's parts: formats/sparse_mask.h, SparseMaskRowView.)

// Byte shuffle controls that expand the codes of one mask byte m: byte j is the rank of bit j
// among m's set bits, plus `base`, where bit j is set, and 0x80 (write 0) where it is clear.
constexpr std::array<uint64_t, 256> ExpandControls(int base) {
  std::array<uint64_t, 256> t{};
  for (int m = 0; m < 256; ++m) {
    int rank = 0;
    for (int j = 0; j < 8; ++j) {
      const uint64_t c = (m >> j) & 1 ? (uint64_t)(base + rank++) : 0x80;
      t[m] |= c << (8 * j);
    }
  }
  return t;
}
// Bytes 0..7 of a lane read the codes of its first mask byte from code byte 0, bytes 8..15 those
// of its second from code byte 8 (where that byte's codes are loaded).
constexpr std::array<uint64_t, 256> kExpandLow = ExpandControls(0), kExpandHigh = ExpandControls(8);

// The 8 bytes at lo and the 8 at hi as one 128-bit register (two loads, no integer registers).
SMELT_AVX2 inline __m128i Pair64(const void* lo, const void* hi) {
  const __m128d low = _mm_castsi128_pd(_mm_loadl_epi64(static_cast<const __m128i*>(lo)));
  return _mm_castpd_si128(_mm_loadh_pd(low, static_cast<const double*>(hi)));
}

// Block b's 32 codes in place (0 where its mask bit is clear), from the codes at c; *c advances
// past them. Each mask byte's 8 codes are loaded at their first code (8 bytes, of which its
// popcount are its own) and spread by the byte's control from a 256-entry table.
SMELT_AVX2 inline __m256i ExpandMaskBlock(const SparseMaskRowView& r, int64_t b, const uint8_t** c) {
  PrefetchAhead<64>(*c);
  if (b % 16 == 0) PrefetchAhead<64>(r.masks + 4 * b, MaskPrefetchDistance());
  const uint8_t* m = r.masks + 4 * b;
  const uint32_t word = LoadU32(m);
  const int n0 = __builtin_popcount(m[0]), n01 = __builtin_popcount(word & 0xFFFF),
            n012 = __builtin_popcount(word & 0xFFFFFF);
  const uint8_t* p = *c;
  const __m256i codes =
      _mm256_inserti128_si256(_mm256_castsi128_si256(Pair64(p, p + n0)), Pair64(p + n01, p + n012), 1);
  const __m256i ctrl = _mm256_inserti128_si256(_mm256_castsi128_si256(Pair64(&kExpandLow[m[0]], &kExpandHigh[m[1]])),
                                               Pair64(&kExpandLow[m[2]], &kExpandHigh[m[3]]), 1);
  *c += __builtin_popcount(word);
  return _mm256_shuffle_epi8(codes, ctrl);
}

SMELT_AVX2 inline float RowScale(const void* w_row) {
  float d;
  std::memcpy(&d, w_row, sizeof d);
  return d;
}

// What a bitmask row's expanded blocks are multiplied with. Against Q8_0 activation rows
// (sp50_q8, sp70_q8) each block's int32 sums are converted and scaled by the block's d_a, and
// the row's sum is scaled by d_w at the end; against i8_pc rows (sp50_w8a8, sp70_w8a8) the
// products stay int32 over the whole row and the one f32 step is w8a8's (Σ · (d_w·d_a)).
struct MaskAgainstQ8_0 {
  using Acc = __m256;
  SMELT_AVX2 static Acc Zero() { return _mm256_setzero_ps(); }
  SMELT_AVX2 static Acc Add(__m256i q, const uint8_t* y_row, int64_t b, Acc acc) {
    const uint8_t* yb = y_row + b * sizeof(BlockQ8_0);
    return _mm256_fmadd_ps(_mm256_set1_ps(LoadHalf(yb)), DotSigned(q, Load32(yb + kQ8_0Qs)), acc);
  }
  SMELT_AVX2 static float Finish(Acc a0, Acc a1, float d_w, const uint8_t*) {
    return d_w * HorizontalSum(_mm256_add_ps(a0, a1));
  }
};
struct MaskAgainstI8Row {
  using Acc = __m256i;
  SMELT_AVX2 static Acc Zero() { return _mm256_setzero_si256(); }
  SMELT_AVX2 static Acc Add(__m256i q, const uint8_t* y_row, int64_t b, Acc acc) {
    const __m256i a = Load32(y_row + sizeof(RowHeaderI8) + b * kQKSparseMask);
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
  SMELT_AVX2 static float Finish(Acc a0, Acc a1, float d_w, const uint8_t* y_row) {
    return (float)SumLanes(_mm256_add_epi32(a0, a1)) * (d_w * ViewI8Row(y_row).d);
  }
};

// acc[k] + block b's term against activation row k (y + k·stride), the block expanded once.
template <class Act, int rows>
SMELT_AVX2 inline void MaskBlockTerms(const SparseMaskRowView& r, int64_t b, const uint8_t** codes, const uint8_t* y,
                                      size_t stride, typename Act::Acc* acc) {
  const __m256i q = ExpandMaskBlock(r, b, codes);
  for (int k = 0; k < rows; ++k) acc[k] = Act::Add(q, y + k * stride, b, acc[k]);
}

// Bitmask rows against `rows` activation rows (a + k·stride), each block expanded once; blocks
// taken in pairs, each with its own accumulators (consecutive multiply-adds do not wait for each
// other). The blocks whose 32-byte code reads could pass the row's last code read a zero-padded
// copy of the remaining codes instead (codes past the capacity read as 0, as the reference
// counts them). Per activation row the operations do not depend on `rows` (bit for bit the same
// results).
template <class Act, int Cap, int rows>
SMELT_AVX2 void DotSparseMaskRows(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  const SparseMaskRowView r = ViewSparseMaskRow(w_row, n, Cap);
  const auto* y = static_cast<const uint8_t*>(a);
  const uint8_t* c = r.codes;
  typename Act::Acc acc0[rows], acc1[rows];
  for (int k = 0; k < rows; ++k) acc0[k] = acc1[k] = Act::Zero();
  int64_t b = 0;
  for (; b + 1 < r.blocks && c + 64 <= r.end; b += 2) {  // a block reads at most 32 codes ahead
    MaskBlockTerms<Act, rows>(r, b, &c, y, stride, acc0);
    MaskBlockTerms<Act, rows>(r, b + 1, &c, y, stride, acc1);
  }
  for (; b < r.blocks && c + 32 <= r.end; ++b) MaskBlockTerms<Act, rows>(r, b, &c, y, stride, acc0);
  if (b < r.blocks) {
    uint8_t tail[64] = {};  // fewer than 32 codes remain
    std::memcpy(tail, c, (size_t)(r.end - c));
    const uint8_t* t = tail;
    for (; b < r.blocks; ++b) {
      MaskBlockTerms<Act, rows>(r, b, &t, y, stride, acc0);
      t = std::min<const uint8_t*>(t, tail + 32);  // past the codes: reads stay on the zeros
    }
  }
  for (int k = 0; k < rows; ++k) out[k] = Act::Finish(acc0[k], acc1[k], RowScale(w_row), y + k * stride);
}

template <class Act, int Cap>
SMELT_AVX2 float DotSparseMask(const void* w_row, const void* a_row, int64_t n) {
  float out;
  DotSparseMaskRows<Act, Cap, 1>(w_row, a_row, 0, n, &out);
  return out;
}

template <class Act, int Cap>
SMELT_AVX2 void DotSparseMaskx4(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  DotSparseMaskRows<Act, Cap, 4>(w_row, a, stride, n, out);
}

// sp70_w4a8 · i8_pc, as kernels/sparse_w4.h walks it: each mask byte's activations packed by one
// byte shuffle (controls from a 256-entry table: the set bits' positions in order) and stored at
// the running count, two mask bytes per shuffle; per 32 packed activations their codes (Codes32),
// then |q| times q_a with
// q's sign in int16 pairs multiplied by the two runs' multipliers (run i of the step in 128-bit
// lane i) into int32 lanes (madd). The same integers and f32 step as the reference: its bits.
namespace w4mask {

#define SMELT_SPARSE_W4_TARGET SMELT_AVX2
#include "kernels/sparse_w4_walk_body.h"
#undef SMELT_SPARSE_W4_TARGET

// Byte shuffle controls that pack one mask byte m's activations: byte r is the position of the
// r-th set bit of m, plus `base`, and 0x80 (write 0) past its set bits.
constexpr std::array<uint64_t, 256> CompressControls(int base) {
  std::array<uint64_t, 256> t{};
  for (int m = 0; m < 256; ++m) {
    int rank = 0;
    for (int j = 0; j < 8; ++j)
      if ((m >> j) & 1) t[m] |= (uint64_t)(base + j) << (8 * rank++);
    for (; rank < 8; ++rank) t[m] |= (uint64_t)0x80 << (8 * rank);
  }
  return t;
}
constexpr std::array<uint64_t, 256> kCompressLow = CompressControls(0), kCompressHigh = CompressControls(8);

// The 64 activations of a group packed by its mask m at out.
SMELT_AVX2 inline void PackGroup(const uint8_t* act, uint64_t m, int8_t* out) {
  int64_t count = 0;
  for (int h = 0; h < 4; ++h) {
    const int lo = (int)((m >> (16 * h)) & 0xFF), hi = (int)((m >> (16 * h + 8)) & 0xFF);
    const __m128i v = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(act + 16 * h)),
                                       Pair64(&kCompressLow[lo], &kCompressHigh[hi]));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + count), v);
    count += __builtin_popcount(lo);
    _mm_storeh_pd(reinterpret_cast<double*>(out + count), _mm_castsi128_pd(v));
    count += __builtin_popcount(hi);
  }
}

// Codes first .. first + 31 (first a multiple of 32) as signed bytes: the low or high nibbles of
// their chunk's 32 bytes (formats/sparse_mask.h), − 8. A row's shorter last chunk (L = 16, 32 or
// 48 codes in L/2 bytes) goes through a zero-padded copy: its low nibbles at 0, its high ones at
// L/2 (once per row).
SMELT_AVX2 inline __m256i Codes32(const SparseMaskW4RowView& r, int64_t first) {
  const int64_t chunk = first / 64 * 64, len = std::min<int64_t>(64, r.capacity - chunk);
  const __m256i nibble = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
  if (len == 64) {
    __m256i x = Load32(r.codes + chunk / 2);
    if (first != chunk) x = _mm256_srli_epi16(x, 4);
    return _mm256_sub_epi8(_mm256_and_si256(x, nibble), eight);
  }
  alignas(32) uint8_t bytes[32] = {};
  std::memcpy(bytes, r.codes + chunk / 2, (size_t)(len / 2));
  const __m256i x = Load32(bytes);
  alignas(32) uint8_t codes[96] = {};
  _mm256_store_si256(reinterpret_cast<__m256i*>(codes), _mm256_and_si256(x, nibble));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + len / 2), _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble));
  return _mm256_sub_epi8(Load32(codes + (first - chunk)), eight);
}

template <int rows>
SMELT_AVX2 void DotRows(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  const SparseMaskW4RowView r = ViewSparseMaskW4Row(w_row, n, kSp70W4Cap);
  sparse_w4::PrefetchRowAhead(w_row, n);
  const uint8_t* y[rows];
  sparse_w4::ActivationCodes<rows>(a, stride, y);
  // Words of 128-bit lane i: byte i of the two multipliers (zero-extended).
  const __m256i run_of_lane = _mm256_setr_epi64x((long long)0x8000800080008000ULL, (long long)0x8000800080008000ULL,
                                                 (long long)0x8001800180018001ULL, (long long)0x8001800180018001ULL);
  alignas(32) int8_t packed[rows][sparse_w4::kPackedBytes];
  int64_t first = 0;  // the stored weight of the next step's first packed activation
  int64_t sum[rows] = {};
  __m256i acc[rows];
  auto step = [&](int64_t j, int64_t lanes) SMELT_AVX2 {  // packed[.][j ..] against weights first ..
    const int64_t valid = sparse_w4::LanesWithCodes(r, first, lanes);
    if (valid > 0) {
      if (valid < 32)
        for (int k = 0; k < rows; ++k) std::memset(packed[k] + j + valid, 0, (size_t)(32 - valid));
      const __m256i q = Codes32(r, first);
      const __m256i magnitude = _mm256_sign_epi8(q, q);
      const __m256i scale = _mm256_shuffle_epi8(_mm256_set1_epi32((int)sparse_w4::RunMultipliers(r, first)), run_of_lane);
      for (int k = 0; k < rows; ++k) {
        const __m256i act = Load32(reinterpret_cast<const uint8_t*>(packed[k] + j));
        acc[k] = _mm256_add_epi32(acc[k], _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(act, q)), scale));
      }
    }
    first += lanes;
  };
  for (int k = 0; k < rows; ++k) acc[k] = _mm256_setzero_si256();
  auto pack = [&](int64_t g, uint64_t m, int64_t at) SMELT_AVX2 {
    for (int k = 0; k < rows; ++k) PackGroup(y[k] + 64 * g, m, packed[k] + at);
  };
  auto window_end = [&](int64_t j, int64_t have) SMELT_AVX2 {
    for (int k = 0; k < rows; ++k) {
      sum[k] += SumLanes(acc[k]);
      acc[k] = _mm256_setzero_si256();
      if (j > 0 && j < have) std::memcpy(packed[k], packed[k] + j, 32);  // j ≥ 32: no overlap
    }
  };
  WalkRow<32>(r, pack, step, window_end);
  sparse_w4::FinishRows<rows>(r, sum, a, stride, out);
}

SMELT_AVX2 float Dot(const void* w_row, const void* a_row, int64_t n) {
  float out;
  DotRows<1>(w_row, a_row, 0, n, &out);
  return out;
}

}  // namespace w4mask

SMELT_AVX2 inline float LoadBf16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return Bf16ToFloat(h);
}

// Bitmask rows of fp16 values against f32 activations (sp50_f16, sp70_f16): each mask byte's up
// to 8 values (16 bytes loaded at its first value) spread to their positions by one byte shuffle
// with a control from a 256-entry table (word j: the rank of bit j among the set bits, or zero
// where clear), two mask bytes per 256-bit shuffle, widened to f32 and multiplied with the
// activations; d once at the end. A block reads at most 64 bytes past its first value; the last
// blocks read a zero-padded copy (values past the capacity read as 0, as the reference counts them).
struct HalfExpandControls {
  alignas(16) uint8_t ctrl[256][16];
};
constexpr HalfExpandControls kExpandHalves = [] {
  HalfExpandControls t{};
  for (int m = 0; m < 256; ++m) {
    int rank = 0;
    for (int j = 0; j < 8; ++j) {
      const bool set = (m >> j) & 1;
      t.ctrl[m][2 * j] = set ? (uint8_t)(2 * rank) : 0x80;
      t.ctrl[m][2 * j + 1] = set ? (uint8_t)(2 * rank + 1) : 0x80;
      rank += set;
    }
  }
  return t;
}();

template <int rows>
SMELT_AVX2 inline void HalfMaskBlockTerms(const SparseMaskRowView& r, int64_t b, const uint8_t** c, const float* const* y,
                                          __m256* acc) {
  PrefetchAhead<64>(*c);
  if (b % 16 == 0) PrefetchAhead<64>(r.masks + 4 * b, MaskPrefetchDistance());
  const uint8_t* m = r.masks + 4 * b;
  const uint8_t* p = *c;
  for (int half = 0; half < 2; ++half) {  // mask bytes 2·half, 2·half + 1: 16 positions
    const uint8_t m0 = m[2 * half], m1 = m[2 * half + 1];
    const uint8_t* p1 = p + 2 * __builtin_popcount(m0);
    const __m256i values = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1)), 1);
    const __m256i ctrl = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kExpandHalves.ctrl[m0]))),
        _mm_load_si128(reinterpret_cast<const __m128i*>(kExpandHalves.ctrl[m1])), 1);
    const __m256i placed = _mm256_shuffle_epi8(values, ctrl);
    const __m256 w0 = _mm256_cvtph_ps(_mm256_castsi256_si128(placed)), w1 = _mm256_cvtph_ps(_mm256_extracti128_si256(placed, 1));
    for (int k = 0; k < rows; ++k) {
      const float* x = y[k] + b * kQKSparseMask + 16 * half;
      acc[k] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[k]));
    }
    p = p1 + 2 * __builtin_popcount(m1);
  }
  *c = p;
}

template <int Cap, int rows>
SMELT_AVX2 void DotSparseMaskF16Rows(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  const SparseMaskRowView r = ViewSparseMaskRow(w_row, n, Cap, 2);
  const float* y[rows];
  for (int k = 0; k < rows; ++k) y[k] = reinterpret_cast<const float*>(static_cast<const uint8_t*>(a) + k * stride);
  const uint8_t* c = r.codes;
  __m256 acc[rows];
  for (int k = 0; k < rows; ++k) acc[k] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b < r.blocks && c + 64 <= r.end; ++b) HalfMaskBlockTerms<rows>(r, b, &c, y, acc);
  if (b < r.blocks) {
    alignas(16) uint8_t tail[128] = {};  // fewer than 32 values remain
    std::memcpy(tail, c, (size_t)(r.end - c));
    const uint8_t* t = tail;
    for (; b < r.blocks; ++b) {
      HalfMaskBlockTerms<rows>(r, b, &t, y, acc);
      t = std::min<const uint8_t*>(t, tail + 64);  // past the values: reads stay on the zeros
    }
  }
  const float d = RowScale(w_row);
  for (int k = 0; k < rows; ++k) out[k] = d * HorizontalSum(acc[k]);
}

template <int Cap>
SMELT_AVX2 float DotSparseMaskF16(const void* w_row, const void* a_row, int64_t n) {
  float out;
  DotSparseMaskF16Rows<Cap, 1>(w_row, a_row, 0, n, &out);
  return out;
}

// s24_w4a8 · i8_pc (formats/sparse24.h): per block of 128, 32 slots at a time (the low nibbles,
// then the high ones). Each slot's position comes from a table of the 256 index bytes (one gather
// per 8 index bytes, put in slot order) plus its group's offset within a 16-byte lane, and two in-lane shuffles pick
// its activation: the lane's 4-byte groups alternate between the block's halves, so from weights
// 0..63 (A) and 64..127 (B), blended per 4-byte lane. Activations flipped to unsigned (q_a + 128)
// meet the signed codes in maddubs (pair sums within ±4080, exact) and the row's header takes
// the 128·Σ d·q added that way off at the end: Σ_h d_h·Σ (q_a + 128)·q − 128·c.
constexpr std::array<uint32_t, 256> kS24W4Spread = [] {
  std::array<uint32_t, 256> t{};
  for (int b = 0; b < 256; ++b) t[b] = S24W4SpreadIndexByte(b);
  return t;
}();

template <int rows>
SMELT_AVX2 void DotS24W4A8Rows(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  alignas(32) static constexpr std::array<uint8_t, 64> kLaneBase = [] {
    std::array<uint8_t, 64> t{};
    for (int s = 0; s < 64; ++s) t[s] = (uint8_t)((4 * S24W4Group(s)) & 15);
    return t;
  }();
  const auto* p = static_cast<const uint8_t*>(w_row);
  const uint8_t* blk = p + sizeof(RowHeaderS24W4);
  const uint8_t* y[rows];
  for (int k = 0; k < rows; ++k) y[k] = static_cast<const uint8_t*>(a) + k * stride + sizeof(RowHeaderI8);
  const __m256i nibble = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8), flip = _mm256_set1_epi8((char)0x80);
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i scale_ctl = _mm256_setr_epi32(0x01008080, 0x03028080, 0x01008080, 0x03028080, 0x01008080, 0x03028080,
                                              0x01008080, 0x03028080);
  const auto* spread = reinterpret_cast<const int*>(kS24W4Spread.data());
  __m256 acc[rows];
  for (int k = 0; k < rows; ++k) acc[k] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQKS24W4; ++i, blk += sizeof(BlockS24W4)) {
    PrefetchAhead<64>(blk);
    const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(BlockS24W4, qs)));
    uint32_t dd;
    std::memcpy(&dd, blk, sizeof dd);
    const __m256 scale = _mm256_castsi256_ps(_mm256_shuffle_epi8(_mm256_set1_epi32((int)dd), scale_ctl));
    for (int part = 0; part < 2; ++part) {  // slots 0..31, then 32..63
      const __m256i raw = part == 0 ? packed : _mm256_srli_epi16(packed, 4);
      // The index bytes of slots 32·part + 4k .. + 3, k = 0..7, first (formats/sparse24.h: I(s)).
      const __m128i in_slot_order = part == 0 ? _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0)
                                              : _mm_setr_epi8(4, 5, 12, 13, 6, 7, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0);
      const __m256i q = _mm256_sub_epi8(_mm256_xor_si256(_mm256_and_si256(raw, nibble), eight), eight);
      const __m128i idx = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(BlockS24W4, idx))),
                                           in_slot_order);
      const __m256i pos = _mm256_or_si256(
          _mm256_i32gather_epi32(spread, _mm256_cvtepu8_epi32(idx), 4),
          _mm256_load_si256(reinterpret_cast<const __m256i*>(kLaneBase.data() + 32 * part)));
      for (int k = 0; k < rows; ++k) {
        const uint8_t* x = y[k] + i * kQKS24W4 + 32 * part;
        const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
        const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 64));
        const __m256i g = _mm256_xor_si256(
            _mm256_blend_epi32(_mm256_shuffle_epi8(lo, pos), _mm256_shuffle_epi8(hi, pos), 0xAA), flip);
        const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(g, q), ones);
        acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, acc[k]);
      }
    }
  }
  float c;
  std::memcpy(&c, p, sizeof c);
  for (int k = 0; k < rows; ++k)
    out[k] = (HorizontalSum(acc[k]) - 128.0f * c) * ViewI8Row(static_cast<const uint8_t*>(a) + k * stride).d;
}

SMELT_AVX2 float DotS24W4A8(const void* w_row, const void* a_row, int64_t n) {
  float out;
  DotS24W4A8Rows<1>(w_row, a_row, 0, n, &out);
  return out;
}

}  // namespace

const Avx2Kernels* Avx2() {
  static constexpr Avx2Kernels kAvx2{DotAgainstQ8_0<BlockQ8_0, CodesQ8_0>,   DotAgainstQ8_0<BlockQ4_0, CodesQ4_0>,
                                     DotAgainstQ8_0<BlockQ5_0, CodesQ5_0>,   DotAgainstQ8_0<BlockIQ4_NL, CodesIQ4_NL>,
                                     DotAgainstQ8_1<BlockQ4_1, CodesQ4_1>,   DotAgainstQ8_1<BlockQ5_1, CodesQ5_1>,
                                     KQuantDot<Q2K>,
                                     DotQ3_K,
                                     KQuantDot<K4<BlockQ4_K, false>>,
                                     KQuantDot<K4<BlockQ5_K, true>>,
                                     KQuantDot<Q6K>,
                                     DotHalves<LoadHalf8, LoadHalf>,
                                     DotHalves<LoadBf16x8, LoadBf16>,
                                     DotW8A8,
                                     DotI8PC,
                                     DotS24<BlockS24Q8, S24CodesQ8>,
                                     DotS24<BlockS24Q4, S24CodesQ4>,
                                     DotSparseMask<MaskAgainstQ8_0, 16>,
                                     DotSparseMask<MaskAgainstQ8_0, 10>,
                                     DotSparseMask<MaskAgainstI8Row, 16>,
                                     DotSparseMask<MaskAgainstI8Row, 10>,
                                     DotS24W4A8,
                                     DotSparseMaskF16<16>,
                                     DotSparseMaskF16<10>,
                                     DotAgainstQ8_0x4<BlockQ8_0, CodesQ8_0>,
                                     DotAgainstQ8_0x4<BlockQ4_0, CodesQ4_0>,
                                     DotAgainstQ8_0x4<BlockQ5_0, CodesQ5_0>,
                                     DotAgainstQ8_0x4<BlockIQ4_NL, CodesIQ4_NL>,
                                     DotS24x4<BlockS24Q8, S24CodesQ8>,
                                     DotS24x4<BlockS24Q4, S24CodesQ4>,
                                     DotSparseMaskx4<MaskAgainstQ8_0, 16>,
                                     DotSparseMaskx4<MaskAgainstQ8_0, 10>,
                                     DotSparseMaskx4<MaskAgainstI8Row, 16>,
                                     DotSparseMaskx4<MaskAgainstI8Row, 10>,
                                     DotS24W4A8Rows<4>,
                                     DotSparseMaskF16Rows<16, 4>,
                                     DotSparseMaskF16Rows<10, 4>,
                                     KQuantDotX4<K4<BlockQ4_K, false>>,
                                     KQuantDotX4<K4<BlockQ5_K, true>>,
                                     KQuantDotX4<Q6K>,
                                     KQuantDotX4<Q2K>,
                                     w4mask::Dot,
                                     w4mask::DotRows<4>,
                                     KQuantRows4<K4<BlockQ4_K, false>>,
                                     KQuantRows4<K4<BlockQ5_K, true>>,
                                     KQuantRows4<Q6K>,
                                     KQuantRows4<Q2K>};
  return &kAvx2;
}

}  // namespace smelt::qdot

#else

namespace smelt::qdot {
const Avx2Kernels* Avx2() { return nullptr; }
}  // namespace smelt::qdot

#endif

#undef SMELT_AVX2  // this file's own (unity builds put several files in one unit)
