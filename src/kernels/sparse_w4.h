#pragma once
// What the SIMD twins of the sp70_w4a8 row dot (kernels/qdot_avx2.cc, qdot_avx512.cc) share: the
// walk over a row (formats/sparse_mask.h, SparseMaskW4RowView). Per window of kWindowGroups groups
// of 64 weights, each activation row is packed by the row's mask (the activations of the stored
// weights, in position order: what the codes line up with); then per step of 64 (AVX2: 32) packed
// activations the matching codes are decoded from their nibbles and multiplied, each run of 16
// codes by its multiplier, into int32 lanes. Packed activations short of a whole step wait at the
// buffer's front for the next window; the last step takes what is left, and no step reads codes
// past the row's capacity (set bits past it count as 0, as in the reference). A window's lanes
// go into an int64 sum: 64 steps of 64 products |q|·|q_a|·s ≤ 8·127·255 stay below 2^31 in the
// sum of the lanes.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "formats/per_channel.h"
#include "formats/sparse_mask.h"
#include "kernels/prefetch.h"

namespace smelt::sparse_w4 {

inline constexpr int64_t kWindowGroups = 64;
// A window's packed activations: up to 64 waiting, 64 per group, and a whole register past them.
inline constexpr size_t kPackedBytes = 64 + 64 * kWindowGroups + 64;

inline uint64_t GroupMask(const uint8_t* masks, int64_t g) {
  uint64_t m;
  std::memcpy(&m, masks + 8 * g, sizeof m);
  return m;
}

// Asks for the lines of the row that lies kPrefetchDistance bytes after this one's start (the
// rows of a matrix follow one another; each call streams one row).
inline void PrefetchRowAhead(const void* row, int64_t n) {
  using Row = SparseMaskRowW4<kSp70W4Cap>;
  const size_t bytes = Row::kHeader + (size_t)(n / Row::kBlock) * Row::kBlockBytes;
  for (size_t line = 0; line < bytes; line += 64) PrefetchAhead<64>(static_cast<const uint8_t*>(row) + line);
}

// The multipliers of the runs from stored weight `first` on (a multiple of 16: byte i is run
// first/16 + i), read as 4 bytes; a row's last step may read code bytes past them, for lanes it
// does not use.
inline uint32_t RunMultipliers(const SparseMaskW4RowView& r, int64_t first) {
  uint32_t four;
  std::memcpy(&four, r.multipliers + first / kSparseW4Run, sizeof four);
  return four;
}

// Activation row k's codes (i8_pc rows, a + k·stride) for `rows` rows.
template <int rows>
inline void ActivationCodes(const void* a, size_t stride, const uint8_t** y) {
  for (int k = 0; k < rows; ++k) y[k] = static_cast<const uint8_t*>(a) + k * stride + sizeof(RowHeaderI8);
}

// The one f32 step of each output: (float) Σ · (d_w·d_a), as the reference takes it.
template <int rows>
inline void FinishRows(const SparseMaskW4RowView& r, const int64_t* sum, const void* a, size_t stride, float* out) {
  for (int k = 0; k < rows; ++k)
    out[k] = (float)sum[k] * (r.d * ViewI8Row(static_cast<const uint8_t*>(a) + k * stride).d);
}

// How many of `lanes` packed activations from stored weight `first` on have codes (the rest lie
// past the capacity); 0 or less: none.
inline int64_t LanesWithCodes(const SparseMaskW4RowView& r, int64_t first, int64_t lanes) {
  return lanes < r.capacity - first ? lanes : r.capacity - first;
}

}  // namespace smelt::sparse_w4
