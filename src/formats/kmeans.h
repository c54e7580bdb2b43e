#pragma once
// Non-uniform per-output-channel codebooks (SqueezeLLM's idea): each row of the weight matrix gets
// its own 2^b centroids, found by 1-D k-means over the row's values (weighted by importance when
// an importance matrix is given: the sensitivity-weighted k-means of SqueezeLLM), and each weight
// stores the b-bit index of its nearest centroid. Bell-shaped rows put most centroids near zero,
// where most weights are, which no uniform grid does.
//
//   km<b>_pc   row header: 2^b fp16 centroids, ascending; then n b-bit codes packed densely
//              (formats/bitpack.h): x = centroid[q]. Rows are a multiple of 8 long.
//   bits/weight: b + 16·2^b / n  (4-bit rows of 4096: 4.125; 3-bit: 3.03)
//
// The k-means is deterministic: the row is sorted once, so every cluster is a run of consecutive
// sorted values and Lloyd's update is two prefix sums; centroids start at the (weighted) quantiles
// (1/2K, 3/2K, ...), iterate until the assignment stops changing (at most 30 rounds), are rounded
// to fp16, and the codes are chosen last for the rounded centroids, so every weight decodes to its
// nearest stored centroid. Non-finite inputs are clustered as 0.
#include <cstddef>
#include <cstdint>

#include "core/half.h"

namespace smelt {

template <int Bits>
struct RowKMeans {
  static constexpr int kCentroids = 1 << Bits;
  struct Header {
    fp16_t centroid[kCentroids];
  };
  static constexpr size_t kHeader = sizeof(Header);
  static constexpr int64_t kCodesPerByteGroup = 8;  // n must be a multiple of this
  static void Dequantize(const void* row, float* y, int64_t n);
  static void Quantize(const float* x, void* row, int64_t n);
  static void QuantizeWeighted(const float* x, const float* w, void* row, int64_t n);
};
static_assert(sizeof(RowKMeans<4>::Header) == 32 && sizeof(RowKMeans<2>::Header) == 8, "fp16 centroids");

}  // namespace smelt
