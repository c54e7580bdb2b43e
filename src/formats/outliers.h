#pragma once
// Outlier-aware ("dense-and-sparse") formats: the K most salient weights of every row are kept
// exactly (fp16) in a sparse side list at the start of the row, and the rest of the row is encoded
// in a base block format with those positions zeroed, so a few large weights no longer stretch
// their blocks' scales (SpQR's and SqueezeLLM's observation: a fraction of a percent of weights
// carries much of the quantization error).
//
//   <base>_o8   row header: 8 × {column (u32, as two u16), value (fp16)}, columns ascending;
//               then the row in <base> (q4_0, i3s_g32): x = base(x)[c], except x[col_k] = value_k.
//   bits/weight: base + 384 / n  (rows of 4096: +0.09)
//
// Saliency: from_float keeps the K weights of largest |w|; from_float_weighted those of largest
// importance · w² (the weight's contribution to the expected output error), and encodes the dense
// part with the base's weighted encoder, outlier columns at importance 0. Ties go to the lower
// column.
#include <cstddef>
#include <cstdint>

#include "core/half.h"
#include "core/tensor.h"

namespace smelt {

struct RowOutlier {
  uint16_t col_lo, col_hi;  // column = col_lo | col_hi << 16
  fp16_t value;
};
static_assert(sizeof(RowOutlier) == 6, "outlier entry is 6 bytes");

template <DType Base, int K>
struct RowWithOutliers {
  static constexpr int kOutliers = K;
  static constexpr size_t kHeader = K * sizeof(RowOutlier);
  static void Dequantize(const void* row, float* y, int64_t n);
  static void Quantize(const float* x, void* row, int64_t n);
  static void QuantizeWeighted(const float* x, const float* w, void* row, int64_t n);
};

}  // namespace smelt
