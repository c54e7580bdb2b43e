#include "formats/plain.h"

#include <cstring>

namespace smelt {

void ConvertRowF32ToF32(const float* x, float* y, int64_t n) {
  if (n > 0) std::memmove(y, x, (size_t)n * sizeof(float));
}

void ConvertRowF16ToF32(const fp16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = Fp16ToFloat(x[i]);
}

void ConvertRowF32ToF16(const float* x, fp16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = FloatToFp16(x[i]);
}

void ConvertRowBf16ToF32(const bf16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = Bf16ToFloat(x[i]);
}

void ConvertRowF32ToBf16(const float* x, bf16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = FloatToBf16(x[i]);
}

void ConvertRowF64ToF32(const double* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = (float)x[i];
}

void ConvertRowF32ToF64(const float* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = (double)x[i];
}

}  // namespace smelt
