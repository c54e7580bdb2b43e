#pragma once
// Rows of halves widened to f32, and f32 rows rounded to halves (to nearest, ties to even): the
// KV cache's f16 rows, read once per attention step; and its i8 heads widened. The plain loops are the reference twins
// (formats/plain.h: ConvertRowF16ToF32, ConvertRowF32ToF16); the twin this CPU runs is F16C's
// vcvtph2ps / vcvtps2ph, 8 values per instruction, with the same bits for every input but one
// kind: a signalling NaN comes out as the quiet NaN of the same payload (the reference keeps the
// bits). Dispatch once, by CpuHasAvx2FmaF16c() (so SMELT_MAX_ISA=scalar runs the plain loops).
#include <cstdint>

#include "core/half.h"

namespace smelt {

void HalfRowToFloat(const fp16_t* x, float* y, int64_t n);
void FloatRowToHalf(const float* x, fp16_t* y, int64_t n);
// y[i] = d · q[i] (the i8 KV cache's heads): one rounding per value, so every twin has the
// plain loop's bits (ScaledInt8RowToFloatRef).
void ScaledInt8RowToFloat(const int8_t* q, float d, float* y, int64_t n);
void ScaledInt8RowToFloatRef(const int8_t* q, float d, float* y, int64_t n);

using HalfRowToFloatFn = void (*)(const fp16_t* x, float* y, int64_t n);
using FloatRowToHalfFn = void (*)(const float* x, fp16_t* y, int64_t n);
using ScaledInt8RowToFloatFn = void (*)(const int8_t* q, float d, float* y, int64_t n);
// The F16C twins, or nullptr where the CPU lacks them.
HalfRowToFloatFn F16cHalfRowToFloat();
FloatRowToHalfFn F16cFloatRowToHalf();
ScaledInt8RowToFloatFn Avx2ScaledInt8RowToFloat();  // 8 values per step; nullptr without AVX2

}  // namespace smelt
