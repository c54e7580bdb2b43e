#pragma once
// FP8 elements (OCP 8-bit floating point spec, v1.0) in blocks of 32 with an fp16 scale:
// 34 bytes = 8.5 bits/weight, x[j] = d · fp8(q[j]). d maps the block's max |x| to the element
// format's largest finite value, so every block uses the format's whole dynamic range.
//   E4M3 ("f8e4m3_b32"): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, the only
//        NaNs are S.1111.111; max 448 = 1.75·2^8; min normal 2^−6, min subnormal 2^−9.
//   E5M2 ("f8e5m2_b32"): 1 sign, 5 exponent (bias 15), 2 mantissa bits, IEEE-like: S.11111.00
//        is ±inf, S.11111.{01,10,11} NaN; max 57344 = 1.75·2^15; min subnormal 2^−16.
// The element encoder rounds to nearest, ties to even, and saturates to ±max (finite inputs
// never become inf or NaN, as OCP's "saturating" conversion); NaN stays NaN. Subnormals are
// encoded and decoded.
#include <cstdint>

#include "core/half.h"

namespace smelt {

struct Fp8Format {
  int exp_bits, man_bits, bias;
  bool ieee_specials;  // E5M2: all-ones exponent is inf/NaN; E4M3: only S.1111.111 is NaN
  float max;           // largest finite value
  uint8_t max_code;    // its code (positive)
};
inline constexpr Fp8Format kE4M3{4, 3, 7, false, 448.0f, 0x7e};
inline constexpr Fp8Format kE5M2{5, 2, 15, true, 57344.0f, 0x7b};

float Fp8ToFloat(const Fp8Format& f, uint8_t code);
uint8_t FloatToFp8(const Fp8Format& f, float x);

inline constexpr int kQKF8 = 32;

struct BlockF8 {
  fp16_t d;            // scale: max |x| / format max
  uint8_t qs[kQKF8];   // elements
};
static_assert(sizeof(BlockF8) == 2 + kQKF8, "FP8 block is 34 bytes");

void DequantizeRowF8E4M3(const BlockF8* x, float* y, int64_t k);
void QuantizeRowF8E4M3(const float* x, BlockF8* y, int64_t k);
void DequantizeRowF8E5M2(const BlockF8* x, float* y, int64_t k);
void QuantizeRowF8E5M2(const float* x, BlockF8* y, int64_t k);

}  // namespace smelt
