#include "formats/q4_1.h"

#include <algorithm>
#include "formats/quant_util.h"

namespace smelt {

void DequantizeRowQ4_1(const BlockQ4_1* x, float* y, int64_t k) {
  const int64_t nb = k / kQK4_1;
  for (int64_t i = 0; i < nb; ++i, y += kQK4_1) {
    const float d = Fp16ToFloat(x[i].d);
    const float m = Fp16ToFloat(x[i].m);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      y[j] = (float)(x[i].qs[j] & 0x0f) * d + m;
      y[j + kQK4_1 / 2] = (float)(x[i].qs[j] >> 4) * d + m;
    }
  }
}

void QuantizeRowQ4_1Ref(const float* x, BlockQ4_1* y, int64_t k) {
  const int64_t nb = k / kQK4_1;
  for (int64_t i = 0; i < nb; ++i, x += kQK4_1) {
    float min, max;
    MinMax(x, kQK4_1, &min, &max);
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = FloatToFp16(d);
    y[i].m = FloatToFp16(min);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[j + kQK4_1 / 2] - min) * id;
      const int q0 = std::min(15, (int)(int8_t)TruncToInt(x0 + 0.5f));
      const int q1 = std::min(15, (int)(int8_t)TruncToInt(x1 + 0.5f));
      y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

}  // namespace smelt
