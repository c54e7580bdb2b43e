// AVX-512 (VBMI) twins of the table-4 row dots (kernels/qdot_table4.h): i4s/i4a per row and km4_pc,
// against f32 activations.
//
// 64 codes (32 bytes) per step of four: one byte permute puts into 32-bit lane l the four bytes
// 8k + l/2 (k = 0..3), whose low nibbles (even l) or high nibbles (odd l, shifted down by 4 once)
// are the codes of positions 16k + l. Shifting the lanes right by 8k then leaves in each lane's low
// four bits the code of position 16k + l, and one 16-entry table permute (which reads only those
// four bits) turns the 16 codes into the group's f32 values for the activations x[16k .. 16k + 15],
// taken as they are. One fused multiply-add per 16 weights, into one of four accumulators per token
// (the four-token form keeps the same four per token, so each token's sum is the single-row
// form's bits).
//
// Only these functions carry the target attribute (dispatch: kernels/qdot.cc).
#include "kernels/qdot_table4.h"

#include "core/cpu.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "kernels/prefetch.h"

#include "core/gcc_avx512_warnings_off.h"

#define SMELT_VBMI __attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512vl,avx512bw,avx512vbmi")))

namespace smelt::table4 {
namespace avx512 {
namespace {

// Byte 4l + k of the permuted register <- source byte 8k + l/2.
constexpr std::array<uint8_t, 64> kNibblePermute = [] {
  std::array<uint8_t, 64> p{};
  for (int l = 0; l < 16; ++l)
    for (int k = 0; k < 4; ++k) p[(size_t)(4 * l + k)] = (uint8_t)(8 * k + l / 2);
  return p;
}();

struct Constants {
  __m512i permute, odd_shift;
  __m512 levels;  // Level(K, c) in lane c
};

template <Kind K>
SMELT_VBMI inline Constants MakeConstants() {
  alignas(64) float levels[16];
  for (int c = 0; c < 16; ++c) levels[c] = Level(K, c);
  return {_mm512_loadu_si512(kNibblePermute.data()), _mm512_set_epi32(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0),
          _mm512_load_ps(levels)};
}

SMELT_VBMI inline float HalfAt(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return _cvtsh_ss(h);
}

// The 16 values of a row with scale d (and offset m), as the format's decoder computes them.
template <Kind K>
SMELT_VBMI inline __m512 ScaledTable(float d, float m, const Constants& c) {
  const __m512 v = _mm512_mul_ps(_mm512_set1_ps(d), c.levels);
  if constexpr (K == Kind::kAsymmetric) return _mm512_add_ps(v, _mm512_set1_ps(m));
  return v;
}

// The 16 values of the row whose header starts at h (the per-row types).
template <Kind K>
SMELT_VBMI inline __m512 RowTable(const uint8_t* h, const Constants& c) {
  if constexpr (K == Kind::kCodebook) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h)));
  return ScaledTable<K>(HalfAt(h), K == Kind::kAsymmetric ? HalfAt(h + 2) : 0.0f, c);
}

template <int NT>
struct Accumulators {
  __m512 v[NT][4];
};

// Steps × 16 codes from the bytes in `bytes` (8·Steps of them) against x_t[0 .. 16·Steps) for each
// token t (x + t·stride floats). valid: how many of the 16·Steps positions exist (the rest read as 0).
template <int NT, int Steps, bool kTail = false>
SMELT_VBMI inline void Chunk(__m256i bytes, const __m512 table, const Constants& c, const float* x, size_t stride,
                             Accumulators<NT>& acc, int valid = 16 * Steps) {
  const __m512i idx = _mm512_srlv_epi32(_mm512_permutexvar_epi8(c.permute, _mm512_castsi256_si512(bytes)), c.odd_shift);
  for (int k = 0; k < Steps; ++k) {
    const __m512i v = k == 0 ? idx : _mm512_srli_epi32(idx, 8 * k);
    if constexpr (kTail) {
      const int lanes = valid - 16 * k;
      if (lanes <= 0) break;
      const __mmask16 m = lanes >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << lanes) - 1);
      const __m512 w = _mm512_maskz_permutexvar_ps(m, v, table);
      for (int t = 0; t < NT; ++t)
        acc.v[t][k] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, x + t * stride + 16 * k), acc.v[t][k]);
    } else {
      const __m512 w = _mm512_permutexvar_ps(v, table);
      for (int t = 0; t < NT; ++t) acc.v[t][k] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + t * stride + 16 * k), acc.v[t][k]);
    }
  }
}

SMELT_VBMI inline __m256i Load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Σ table[c_j]·x_t[j] over each of NR weight rows (w_rows + r·w_stride bytes) for NT tokens (x_t =
// a + t·stride bytes) into out[r·NT + t]. Each (row, token) takes the same steps in the same order
// whatever NR and NT are, so every form gives the single-row, single-token bits; several rows per
// call (decoding) share each step's activations and keep several weight streams in flight.
template <DType W, int NT, int NR>
SMELT_VBMI void DotCore(const void* w_rows, size_t w_stride, const void* a, size_t stride, int64_t n, float* out) {
  constexpr Layout L = LayoutOf(W);
  constexpr Kind K = L.kind;
  const Constants c = MakeConstants<K>();
  const uint8_t* p[NR];
  for (int r = 0; r < NR; ++r) p[r] = static_cast<const uint8_t*>(w_rows) + r * w_stride;
  const auto* x = static_cast<const float*>(a);
  const size_t fstride = stride / sizeof(float);
  Accumulators<NT> acc[NR];
  for (Accumulators<NT>& row : acc)
    for (auto& token : row.v)
      for (__m512& v : token) v = _mm512_setzero_ps();
  {  // one table for the row (every table-4 type has its header once per row)
    static_assert(L.group == 0);
    __m512 table[NR];
    const uint8_t* codes[NR];
    for (int r = 0; r < NR; ++r) table[r] = RowTable<K>(p[r], c), codes[r] = p[r] + L.header;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
      for (int r = 0; r < NR; ++r) {
        PrefetchAhead<64>(codes[r] + i / 2);
        Chunk<NT, 4>(Load32(codes[r] + i / 2), table[r], c, x + i, fstride, acc[r]);
      }
    if (i < n) {  // rows are a multiple of 8: up to 56 codes left
      const int rem = (int)(n - i);
      for (int r = 0; r < NR; ++r) {
        const __m256i bytes = _mm256_maskz_loadu_epi8((__mmask32)((1ull << (rem / 2)) - 1), codes[r] + i / 2);
        Chunk<NT, 4, true>(bytes, table[r], c, x + i, fstride, acc[r], rem);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t)
      out[r * NT + t] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[r].v[t][0], acc[r].v[t][1]),
                                                           _mm512_add_ps(acc[r].v[t][2], acc[r].v[t][3])));
}

template <DType W, int NT>
SMELT_VBMI void Dot(const void* w_row, const void* a, size_t stride, int64_t n, float* out) {
  DotCore<W, NT, 1>(w_row, 0, a, stride, n, out);
}

template <DType W>
SMELT_VBMI void DotRows4(const void* w_rows, size_t w_stride, const void* a_row, int64_t n, float* out) {
  DotCore<W, 1, 4>(w_rows, w_stride, a_row, 0, n, out);
}

template <DType W>
SMELT_VBMI float Dot1(const void* w_row, const void* a_row, int64_t n) {
  float out;
  Dot<W, 1>(w_row, a_row, 0, n, &out);
  return out;
}

template <DType W>
struct OneToken {
  static constexpr QDotFn kFn = Dot1<W>;
};
template <DType W>
struct FourTokens {
  static constexpr QDotX4Fn kFn = Dot<W, 4>;
};
template <DType W>
struct FourRows {
  static constexpr QDotRows4Fn kFn = DotRows4<W>;
};

bool Usable() { return CpuHasAvx512F() && CpuHasAvx512Vbmi(); }

}  // namespace
}  // namespace avx512

QDotFn Avx512Dot(DType weight) { return avx512::Usable() ? Find<avx512::OneToken, QDotFn>(weight) : nullptr; }
QDotX4Fn Avx512DotX4(DType weight) { return avx512::Usable() ? Find<avx512::FourTokens, QDotX4Fn>(weight) : nullptr; }
QDotRows4Fn Avx512DotRows4(DType weight) {
  return avx512::Usable() ? Find<avx512::FourRows, QDotRows4Fn>(weight) : nullptr;
}

}  // namespace smelt::table4

#include "core/gcc_avx512_warnings_on.h"

#else

namespace smelt::table4 {
QDotFn Avx512Dot(DType) { return nullptr; }
QDotX4Fn Avx512DotX4(DType) { return nullptr; }
}  // namespace smelt::table4

#endif

#undef SMELT_VBMI
