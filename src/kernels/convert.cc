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

}  // namespace smelt
