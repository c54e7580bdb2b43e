#pragma once
// Small scalar helpers shared by the reference quantizers. They reproduce the exact integer
// conversions ggml's reference code performs, but stay defined for NaN and out-of-range values
// (where a plain C cast would be undefined behaviour): such inputs give an arbitrary but
// deterministic code instead of a crash under the sanitizers.
#include <cmath>
#include <cstdint>
#include <cstring>

// Bit-exactness with ggml needs every a*b+c rounded twice, as ggml's reference build does: no
// fused multiply-add. GCC in ISO mode (-std=c++20) never contracts; clang would where FMA is
// available (-march=native), so turn that off for the files that include this header.
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace smelt {

// A group whose largest |x| is below this is all zero (ggml's GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

// (int)v: truncation toward zero, as a C cast does; 0 for NaN and values outside int's range.
inline int TruncToInt(float v) {
  return (v > -2147483648.0f && v < 2147483648.0f) ? (int)v : 0;
}

// roundf(v) as an int (halves away from zero); 0 for NaN and values outside int's range.
inline int RoundToInt(float v) { return TruncToInt(std::round(v)); }

// ggml's nearest_int: round to nearest, ties to even, through the 1.5 * 2^23 magic constant.
// Exact for |v| <= 4194303; larger values give an arbitrary (defined) result.
inline int NearestInt(float v) {
  float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, sizeof(i));
  return (i & 0x007fffff) - 0x00400000;
}

// The value of largest magnitude in x[0..n) (the first one, keeping its sign); its magnitude in
// *amax. Both 0 for an all-zero group. NaNs are skipped, as in ggml's comparisons.
inline float SignedAbsMax(const float* x, int64_t n, float* amax) {
  float a = 0.0f, max = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > a) {
      a = std::fabs(x[i]);
      max = x[i];
    }
  }
  *amax = a;
  return max;
}

// Smallest and largest of x[0..n), n >= 1, compared as ggml does (NaNs skipped).
inline void MinMax(const float* x, int64_t n, float* min, float* max) {
  float lo = 3.402823466e+38f, hi = -3.402823466e+38f;
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  *min = lo;
  *max = hi;
}

}  // namespace smelt
