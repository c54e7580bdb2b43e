#include "formats/q5_0.h"

#include <algorithm>
#include <cmath>

#include "formats/quant_util.h"

namespace smelt {

void DequantizeRowQ5_0(const BlockQ5_0* x, float* y, int64_t k) {
  const int64_t nb = k / kQK5_0;
  for (int64_t i = 0; i < nb; ++i, y += kQK5_0) {
    const float d = Fp16ToFloat(x[i].d);
    const uint32_t qh = LoadQh(x[i].qh);
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      const int h0 = (int)((qh >> j) & 1) << 4;
      const int h1 = (int)((qh >> (j + kQK5_0 / 2)) & 1) << 4;
      y[j] = (float)(((x[i].qs[j] & 0x0f) | h0) - 16) * d;
      y[j + kQK5_0 / 2] = (float)(((x[i].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void QuantizeRowQ5_0Ref(const float* x, BlockQ5_0* y, int64_t k) {
  const int64_t nb = k / kQK5_0;
  for (int64_t i = 0; i < nb; ++i, x += kQK5_0) {
    float amax;
    const float max = SignedAbsMax(x, kQK5_0, &amax);
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = FloatToFp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[j + kQK5_0 / 2] * id;
      const uint8_t q0 = (uint8_t)std::min(31, (int)(int8_t)TruncToInt(x0 + 16.5f));
      const uint8_t q1 = (uint8_t)std::min(31, (int)(int8_t)TruncToInt(x1 + 16.5f));
      y[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
      qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
      qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + kQK5_0 / 2);
    }
    StoreQh(qh, y[i].qh);
  }
}

}  // namespace smelt
