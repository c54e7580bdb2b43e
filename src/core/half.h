#pragma once
// IEEE binary16 and bfloat16 <-> float, bit-exact with ggml's reference conversions:
// round-to-nearest-even, NaN kept quiet, overflow to infinity.
#include <cstdint>
#include <cstring>

namespace smelt {

using fp16_t = uint16_t;  // raw IEEE half bits
using bf16_t = uint16_t;  // raw bfloat16 bits

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float Fp16ToFloat(fp16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return BitsFloat(sign | 0x7f800000u | (mant << 13));  // inf / nan
  if (exp == 0) {
    if (mant == 0) return BitsFloat(sign);
    // subnormal: value = mant * 2^-24
    float v = (float)mant * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return BitsFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

inline fp16_t FloatToFp16(float f) {
  uint32_t x = FloatBits(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return (fp16_t)(sign | 0x7e00 | ((x >> 13) & 0x3ff));  // NaN stays NaN
  if (x >= 0x477ff000u) return (fp16_t)(sign | 0x7c00);                       // overflow -> inf
  if (x < 0x38800000u) {                                                      // subnormal / zero
    // Round x (as float) to a multiple of 2^-24 with round-half-even.
    float a = BitsFloat(x);
    float scaled = a * 16777216.0f;  // exact for these magnitudes
    uint32_t m = (uint32_t)scaled;
    float rem = scaled - (float)m;
    if (rem > 0.5f || (rem == 0.5f && (m & 1))) ++m;
    return (fp16_t)(sign | m);
  }
  // normal: rebias exponent, round mantissa 23 -> 10 bits half-even
  uint32_t mant_odd = (x >> 13) & 1;
  x += 0xc8000fffu + mant_odd;  // (-112 << 23) + rounding bias
  return (fp16_t)(sign | (x >> 13));
}

inline float Bf16ToFloat(bf16_t b) { return BitsFloat((uint32_t)b << 16); }

// The half or bfloat16 at p (any alignment: rows of halves start anywhere) as f32.
inline float ReadF16(const void* p) {
  fp16_t h;
  std::memcpy(&h, p, sizeof h);
  return Fp16ToFloat(h);
}
inline float ReadBf16(const void* p) {
  bf16_t h;
  std::memcpy(&h, p, sizeof h);
  return Bf16ToFloat(h);
}

inline bf16_t FloatToBf16(float f) {
  uint32_t u = FloatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 64);  // quiet NaN (as ggml)
  return (bf16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

}  // namespace smelt
