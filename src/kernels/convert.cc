#include "kernels/convert.h"

#include "formats/plain.h"

namespace smelt {

void HalfRowToFloat(const fp16_t* x, float* y, int64_t n) {
  static const HalfRowToFloatFn fn = F16cHalfRowToFloat() ? F16cHalfRowToFloat() : ConvertRowF16ToF32;
  fn(x, y, n);
}

void FloatRowToHalf(const float* x, fp16_t* y, int64_t n) {
  static const FloatRowToHalfFn fn = F16cFloatRowToHalf() ? F16cFloatRowToHalf() : ConvertRowF32ToF16;
  fn(x, y, n);
}

void ScaledInt8RowToFloatRef(const int8_t* q, float d, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = d * (float)q[i];
}

void ScaledInt8RowToFloat(const int8_t* q, float d, float* y, int64_t n) {
  static const ScaledInt8RowToFloatFn fn =
      Avx2ScaledInt8RowToFloat() ? Avx2ScaledInt8RowToFloat() : ScaledInt8RowToFloatRef;
  fn(q, d, y, n);
}

}  // namespace smelt
