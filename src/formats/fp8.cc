#include "formats/fp8.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "formats/quant_util.h"

namespace smelt {

float Fp8ToFloat(const Fp8Format& f, uint8_t code) {
  const float sign = (code & 0x80) ? -1.0f : 1.0f;
  const int e = (code & 0x7f) >> f.man_bits, m = code & ((1 << f.man_bits) - 1);
  const int e_all = (1 << f.exp_bits) - 1;
  if (f.ieee_specials && e == e_all)
    return m == 0 ? sign * std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  if (!f.ieee_specials && (code & 0x7f) == 0x7f) return std::numeric_limits<float>::quiet_NaN();
  if (e == 0) return sign * std::ldexp((float)m, 1 - f.bias - f.man_bits);  // subnormal
  return sign * std::ldexp((float)((1 << f.man_bits) + m), e - f.bias - f.man_bits);
}

namespace {

// Round to nearest, ties to even, of a non-negative double holding at most 2^24 + a fraction.
int64_t RoundHalfEven(double v) {
  const double fl = std::floor(v);
  const double frac = v - fl;
  int64_t r = (int64_t)fl;
  if (frac > 0.5 || (frac == 0.5 && (r & 1))) ++r;
  return r;
}

}  // namespace

uint8_t FloatToFp8(const Fp8Format& f, float x) {
  if (std::isnan(x)) return 0x7f;  // S.1111.111 is NaN in both formats
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const double a = std::fabs((double)x);
  if (a >= f.max) return sign | f.max_code;  // saturate (inf included)
  const int emin = 1 - f.bias;  // exponent of the smallest normal
  int ex;
  std::frexp(a, &ex);  // a = frac · 2^ex, frac in [0.5, 1)
  const int e = std::max(ex - 1, emin);  // below the normals: the subnormal spacing
  // The value in units of the spacing at exponent e: an integer in [2^M, 2^(M+1)) for normals,
  // [0, 2^M) for subnormals. Scaling by a power of two is exact, so the rounding is the only one.
  const int64_t q = RoundHalfEven(std::ldexp(a, f.man_bits - e));
  // Code = (biased exponent << M) + mantissa; a carry out of the mantissa (q = 2^(M+1)) moves to
  // the next exponent by plain integer addition, and a subnormal rounding up to 2^M becomes the
  // smallest normal the same way.
  // (Zero is its own case: frexp gives it no meaningful exponent.)
  const int64_t code = a == 0 ? 0 : ((int64_t)(e - emin) << f.man_bits) + q;
  return sign | (uint8_t)std::min<int64_t>(code, f.max_code);
}

namespace {

void DequantizeF8(const Fp8Format& f, const BlockF8* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / kQKF8; ++i, y += kQKF8) {
    const float d = Fp16ToFloat(x[i].d);
    for (int j = 0; j < kQKF8; ++j) y[j] = d * Fp8ToFloat(f, x[i].qs[j]);
  }
}

void QuantizeF8(const Fp8Format& f, const float* x, BlockF8* y, int64_t k) {
  for (int64_t i = 0; i < k / kQKF8; ++i, x += kQKF8) {
    float amax;
    SignedAbsMax(x, kQKF8, &amax);
    y[i].d = FloatToFp16(amax / f.max);
    const float d = Fp16ToFloat(y[i].d);
    for (int j = 0; j < kQKF8; ++j) y[i].qs[j] = FloatToFp8(f, d != 0.0f ? x[j] / d : 0.0f);
  }
}

}  // namespace

void DequantizeRowF8E4M3(const BlockF8* x, float* y, int64_t k) { DequantizeF8(kE4M3, x, y, k); }
void QuantizeRowF8E4M3(const float* x, BlockF8* y, int64_t k) { QuantizeF8(kE4M3, x, y, k); }
void DequantizeRowF8E5M2(const BlockF8* x, float* y, int64_t k) { DequantizeF8(kE5M2, x, y, k); }
void QuantizeRowF8E5M2(const float* x, BlockF8* y, int64_t k) { QuantizeF8(kE5M2, x, y, k); }

}  // namespace smelt
