#include "formats/q8_0.h"

#include <cmath>

#include "formats/quant_util.h"

namespace smelt {
namespace {

// Largest |x[j]| of one block of n values.
float AbsMax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float v = std::fabs(x[j]);
    amax = amax > v ? amax : v;  // ggml's MAX(): a NaN input makes the scale NaN
  }
  return amax;
}

}  // namespace

void DequantizeRowQ8_0(const BlockQ8_0* x, float* y, int64_t k) {
  const int64_t nb = k / kQK8_0;
  for (int64_t i = 0; i < nb; ++i, y += kQK8_0) {
    const float d = Fp16ToFloat(x[i].d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = (float)x[i].qs[j] * d;
  }
}

void QuantizeRowQ8_0Ref(const float* x, BlockQ8_0* y, int64_t k) {
  const int64_t nb = k / kQK8_0;
  for (int64_t i = 0; i < nb; ++i, x += kQK8_0) {
    const float d = AbsMax(x, kQK8_0) / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = FloatToFp16(d);
    for (int j = 0; j < kQK8_0; ++j) {
      const float v = x[j] * id;
      y[i].qs[j] = (int8_t)RoundToInt(v);
    }
  }
}

void DequantizeRowQ8_1(const BlockQ8_1* x, float* y, int64_t k) {
  const int64_t nb = k / kQK8_1;
  for (int64_t i = 0; i < nb; ++i, y += kQK8_1) {
    const float d = Fp16ToFloat(x[i].d);
    for (int j = 0; j < kQK8_1; ++j) y[j] = (float)x[i].qs[j] * d;
  }
}

void QuantizeRowQ8_1Ref(const float* x, BlockQ8_1* y, int64_t k) {
  const int64_t nb = k / kQK8_1;
  for (int64_t i = 0; i < nb; ++i, x += kQK8_1) {
    const float d = AbsMax(x, kQK8_1) / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = FloatToFp16(d);
    int sum = 0;
    for (int j = 0; j < kQK8_1 / 2; ++j) {
      const float v0 = x[j] * id;
      const float v1 = x[j + kQK8_1 / 2] * id;
      y[i].qs[j] = (int8_t)RoundToInt(v0);
      y[i].qs[j + kQK8_1 / 2] = (int8_t)RoundToInt(v1);
      sum += y[i].qs[j] + y[i].qs[j + kQK8_1 / 2];
    }
    y[i].s = FloatToFp16((float)sum * d);
  }
}

}  // namespace smelt
