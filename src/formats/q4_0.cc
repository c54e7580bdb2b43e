#include "formats/q4_0.h"

#include <algorithm>
#include <cmath>

#include "formats/quant_util.h"

namespace smelt {

void DequantizeRowQ4_0(const BlockQ4_0* x, float* y, int64_t k) {
  const int64_t nb = k / kQK4_0;
  for (int64_t i = 0; i < nb; ++i, y += kQK4_0) {
    const float d = Fp16ToFloat(x[i].d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      y[j] = (float)((x[i].qs[j] & 0x0f) - 8) * d;
      y[j + kQK4_0 / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void QuantizeRowQ4_0Ref(const float* x, BlockQ4_0* y, int64_t k) {
  const int64_t nb = k / kQK4_0;
  for (int64_t i = 0; i < nb; ++i, x += kQK4_0) {
    float amax;
    const float max = SignedAbsMax(x, kQK4_0, &amax);
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = FloatToFp16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const float x0 = x[j] * id;  // separate statements: no fused multiply-add
      const float x1 = x[j + kQK4_0 / 2] * id;
      const int q0 = std::min(15, (int)(int8_t)TruncToInt(x0 + 8.5f));
      const int q1 = std::min(15, (int)(int8_t)TruncToInt(x1 + 8.5f));
      y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

}  // namespace smelt
