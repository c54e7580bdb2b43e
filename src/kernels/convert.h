#pragma once
// Rows of halves widened to f32, and f32 rows rounded to halves (to nearest, ties to even): the
// KV cache's f16 rows, read once per attention step. The plain loops are the reference twins
// (formats/plain.h: ConvertRowF16ToF32, ConvertRowF32ToF16); the twin this CPU runs is F16C's
// vcvtph2ps / vcvtps2ph, 8 values per instruction, with the same bits for every input but one
// kind: a signalling NaN comes out as the quiet NaN of the same payload (the reference keeps the
// bits). Dispatch once, by CpuHasAvx2FmaF16c() (so SMELT_MAX_ISA=scalar runs the plain loops).
#include <cstdint>

#include "core/half.h"

namespace smelt {

void HalfRowToFloat(const fp16_t* x, float* y, int64_t n);
void FloatRowToHalf(const float* x, fp16_t* y, int64_t n);

using HalfRowToFloatFn = void (*)(const fp16_t* x, float* y, int64_t n);
using FloatRowToHalfFn = void (*)(const float* x, fp16_t* y, int64_t n);
// The F16C twins, or nullptr where the CPU lacks them.
HalfRowToFloatFn F16cHalfRowToFloat();
FloatRowToHalfFn F16cFloatRowToHalf();

}  // namespace smelt
