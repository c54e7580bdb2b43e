#pragma once
// Per-output-channel formats: one scale (and for the asymmetric kind one offset) per row of the
// weight matrix, stored at the start of the row (TypeTraits::row_header), then the row's codes.
// These are the layouts of int8 "W8" checkpoints and of per-channel GPTQ/AWQ int4/int3/int2.
// Their rows are their blocks of scaling, so to_float/from_float take exactly one whole row.
//
//   i8_pc    f32 d, then n int8 codes:      x = d · q,  q in −127..127 (−128 never written, so
//            an int8 kernel may negate any code). from_float: d = max|x| / 127.
//   w8a8     the same bytes as i8_pc; only the activation side differs: a dot product with a w8a8
//            row first encodes the activation row itself as i8_pc (dynamic per-token int8, one
//            f32 scale per token: SmoothQuant's W8A8), where i8_pc weights see f32 activations.
//   i<b>s_pc fp16 d, then n b-bit codes packed densely (formats/bitpack.h): x = d · q,
//            q in −2^(b−1)..2^(b−1)−1, as the symmetric group-int types with the row as group.
//   i<b>a_pc fp16 d, fp16 m, then the codes: x = d · q + m, q in 0..2^b−1.
// The int types need rows that are a multiple of 8 (whole bytes of codes for every bit width).
#include <cstdint>
#include <cstring>

#include "core/half.h"

namespace smelt {

struct RowHeaderI8 {
  float d;
};
static_assert(sizeof(RowHeaderI8) == 4, "i8_pc row header is one f32");

// An i8_pc/w8a8 row (or a per-token int8 activation row) as its scale and codes; rows start
// anywhere, so the scale is read with memcpy.
struct I8RowView {
  float d;
  const uint8_t* codes;  // int8 codes
};
inline I8RowView ViewI8Row(const void* row) {
  const auto* p = static_cast<const uint8_t*>(row);
  I8RowView v;
  std::memcpy(&v.d, p, sizeof v.d);
  v.codes = p + sizeof(RowHeaderI8);
  return v;
}

template <bool Symmetric>
struct RowHeaderInt {
  fp16_t dm[Symmetric ? 1 : 2];
};
static_assert(sizeof(RowHeaderInt<true>) == 2 && sizeof(RowHeaderInt<false>) == 4, "fp16 d (and m) per row");

// Rows start anywhere (rows of n + 4 bytes), so headers are read and written with memcpy.
void DequantizeRowI8PC(const void* row, float* y, int64_t n);
void QuantizeRowI8PC(const float* x, void* row, int64_t n);
void QuantizeRowI8PCWeighted(const float* x, const float* w, void* row, int64_t n);

template <int Bits, bool Symmetric>
struct RowInt {
  static constexpr int64_t kCodesPerByteGroup = 8;  // n must be a multiple of this
  static constexpr size_t kHeader = sizeof(RowHeaderInt<Symmetric>);
  static void Dequantize(const void* row, float* y, int64_t n);
  static void Quantize(const float* x, void* row, int64_t n);
  static void QuantizeWeighted(const float* x, const float* w, void* row, int64_t n);
};

}  // namespace smelt
