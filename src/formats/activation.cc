#include "formats/activation.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "formats/activation_simd.h"
#include "formats/group_int.h"
#include "formats/k_quants.h"
#include "formats/per_channel.h"
#include "formats/plain.h"
#include "formats/q8_0.h"
#include "formats/quant_util.h"
#include "formats/types.h"

namespace smelt {
namespace {

// The Q8_0 block encoder the activations use: the AVX-512 twin where the CPU has it (the same
// bits), else the reference.
float EncodeQ8Block(const float* x, int8_t* q) {
  static const EncodeQ8BlockFn fast = CpuHasAvx512F() ? Avx512EncodeQ8Block() : nullptr;
  if (float amax; fast && fast(x, q, &amax)) return amax / 127.0f;
  return ReferenceEncodeQ8Block(x, q);
}

void QuantizeActQ8_0(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK8_0; ++i, x += kQK8_0) y[i].d = FloatToFp16(EncodeQ8Block(x, y[i].qs));
}

// Per-token int8 rows: the AVX-512 twin where the CPU has it and the row is finite (the same
// bytes), else the reference.
void QuantizeActI8PC(const float* x, void* row, int64_t n) {
  static const EncodeI8RowFn fast = CpuHasAvx512F() ? Avx512EncodeI8Row() : nullptr;
  if (!fast || !fast(x, row, n)) QuantizeRowI8PC(x, row, n);
}

// Q8_K per block of 256: the widest twin this CPU runs where the block is finite, else the reference.
void QuantizeActQ8_K(const float* x, BlockQ8_K* y, int64_t n) {
  static const EncodeQ8KBlockFn fast = CpuHasAvx512F()       ? Avx512EncodeQ8KBlock()
                                       : CpuHasAvx2FmaF16c() ? Avx2EncodeQ8KBlock()
                                                             : nullptr;
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K)
    if (!fast || !fast(x, y + i)) QuantizeRowQ8_KRef(x, y + i, kQK_K);
}

void QuantizeActQ8_1(const float* x, BlockQ8_1* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK8_1; ++i, x += kQK8_1) {
    const float d = EncodeQ8Block(x, y[i].qs);
    int sum = 0;
    for (int j = 0; j < kQK8_1; ++j) sum += y[i].qs[j];
    y[i].d = FloatToFp16(d);
    y[i].s = FloatToFp16(d * (float)sum);
  }
}

}  // namespace

float ReferenceEncodeQ8Block(const float* x, int8_t* q) {
  float amax = 0.0f;
  for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  for (int j = 0; j < kQK8_0; ++j) q[j] = (int8_t)std::clamp(NearestInt(x[j] * id), -127, 127);
  return amax / 127.0f;
}

DType ActivationType(DType weight) {
  switch (weight) {
    case DType::kF16: return DType::kF16;
    case DType::kBF16: return DType::kBF16;
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0:
    case DType::kIQ4_NL:
    case DType::kNF4:  // its levels in fixed point (formats/nf4.h) against int8 codes, as IQ4_NL's
    // The sparse types' kernels gather (2:4) or expand (bitmask) int8 codes against Q8_0 blocks.
    case DType::kS24_Q8:
    case DType::kS24_Q4:
    case DType::kSP50_Q8:
    case DType::kSP70_Q8: return DType::kQ8_0;
    case DType::kQ4_1:
    case DType::kQ5_1:
    case DType::kQ8_1: return DType::kQ8_1;
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return DType::kQ8_K;
    case DType::kW8A8:  // dynamic per-token int8
    case DType::kSP50_W8A8:
    case DType::kSP70_W8A8:
    case DType::kSP70_W4A8:
    case DType::kS24_W4A8: return DType::kI8_PC;
    default: {
      // The group types run as Q4_0 and Q4_1 blocks (formats/group_int.h); f32 and the other
      // weight-only formats, sp50_f16/sp70_f16 (fp16 values) see f32.
      const DType ggml = GroupIntGgmlType(weight);
      return ggml == DType::kF32 ? DType::kF32 : ActivationType(ggml);
    }
  }
}

void QuantizeActivationRow(DType act, const float* x, void* y, int64_t n) {
  switch (act) {
    case DType::kF32: std::memcpy(y, x, sizeof(float) * n); return;
    case DType::kF16: ConvertRowF32ToF16(x, static_cast<fp16_t*>(y), n); return;
    case DType::kBF16: ConvertRowF32ToBf16(x, static_cast<bf16_t*>(y), n); return;
    case DType::kQ8_0: QuantizeActQ8_0(x, static_cast<BlockQ8_0*>(y), n); return;
    case DType::kQ8_1: QuantizeActQ8_1(x, static_cast<BlockQ8_1*>(y), n); return;
    case DType::kQ8_K: QuantizeActQ8_K(x, static_cast<BlockQ8_K*>(y), n); return;
    case DType::kI8_PC: QuantizeActI8PC(x, y, n); return;
    default: SMELT_ASSERT(!"not an activation type");
  }
}

void RoundActivationRow(DType weight, const float* x, float* y, int64_t n) {
  const DType act = ActivationType(weight);
  if (act == DType::kF32) {
    if (y != x) std::memmove(y, x, sizeof(float) * n);
    return;
  }
  const TypeTraits& tr = Traits(act);
  SMELT_ASSERT(n % tr.block_size == 0);
  if (tr.row_header) {  // one scale for the whole row: encode it at once
    std::vector<uint8_t> row(RowBytes(act, n));
    QuantizeActivationRow(act, x, row.data(), n);
    tr.to_float(row.data(), y, n);
    return;
  }
  // One block at a time through a small buffer (the largest activation block is Q8_K's).
  alignas(8) unsigned char block[sizeof(BlockQ8_K)];
  const int64_t step = tr.block_size == 1 ? 64 : tr.block_size;
  static_assert(64 * sizeof(float) <= sizeof(block));
  for (int64_t i = 0; i < n; i += step) {
    const int64_t m = std::min(step, n - i);
    QuantizeActivationRow(act, x + i, block, m);
    tr.to_float(block, y + i, m);
  }
}

}  // namespace smelt
