#pragma once
// Plain (unblocked) element types: f32, f16, bf16, f64 rows to and from f32. The f16/bf16
// conversions are core/half.h's (round-to-nearest-even, bit-exact with ggml's reference).
#include <cstdint>

#include "core/half.h"

namespace smelt {

void ConvertRowF32ToF32(const float* x, float* y, int64_t n);
void ConvertRowF16ToF32(const fp16_t* x, float* y, int64_t n);
void ConvertRowF32ToF16(const float* x, fp16_t* y, int64_t n);
void ConvertRowBf16ToF32(const bf16_t* x, float* y, int64_t n);
void ConvertRowF32ToBf16(const float* x, bf16_t* y, int64_t n);
void ConvertRowF64ToF32(const double* x, float* y, int64_t n);
void ConvertRowF32ToF64(const float* x, double* y, int64_t n);

}  // namespace smelt
