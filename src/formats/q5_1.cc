#include "formats/q5_1.h"

#include "formats/q5_0.h"
#include "formats/quant_util.h"

namespace smelt {

void DequantizeRowQ5_1(const BlockQ5_1* x, float* y, int64_t k) {
  const int64_t nb = k / kQK5_1;
  for (int64_t i = 0; i < nb; ++i, y += kQK5_1) {
    const float d = Fp16ToFloat(x[i].d);
    const float m = Fp16ToFloat(x[i].m);
    const uint32_t qh = LoadQh(x[i].qh);
    for (int j = 0; j < kQK5_1 / 2; ++j) {
      const int h0 = (int)((qh >> j) & 1) << 4;
      const int h1 = (int)((qh >> (j + kQK5_1 / 2)) & 1) << 4;
      y[j] = (float)((x[i].qs[j] & 0x0f) | h0) * d + m;
      y[j + kQK5_1 / 2] = (float)((x[i].qs[j] >> 4) | h1) * d + m;
    }
  }
}

void QuantizeRowQ5_1Ref(const float* x, BlockQ5_1* y, int64_t k) {
  const int64_t nb = k / kQK5_1;
  for (int64_t i = 0; i < nb; ++i, x += kQK5_1) {
    float min, max;
    MinMax(x, kQK5_1, &min, &max);
    const float d = (max - min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = FloatToFp16(d);
    y[i].m = FloatToFp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK5_1 / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[j + kQK5_1 / 2] - min) * id;
      // No clamp to 31 here, as in ggml: x0 <= 31 + rounding, so +0.5 truncates to <= 31.
      const uint8_t q0 = (uint8_t)TruncToInt(x0 + 0.5f);
      const uint8_t q1 = (uint8_t)TruncToInt(x1 + 0.5f);
      y[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
      qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
      qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + kQK5_1 / 2);
    }
    StoreQh(qh, y[i].qh);
  }
}

}  // namespace smelt
