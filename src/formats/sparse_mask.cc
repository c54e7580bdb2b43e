#include "formats/sparse_mask.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/half.h"
#include "formats/quant_util.h"

namespace smelt {

template <int Cap>
void SparseMaskRow<Cap>::Dequantize(const void* row, float* y, int64_t n) {
  RowHeaderSparseMask h;
  std::memcpy(&h, row, sizeof h);
  std::fill(y, y + n, 0.0f);
  ForEachStoredWeight<Cap>(row, n, [&](int64_t i, int8_t q) { y[i] = h.d * (float)q; });
}

namespace {

// The kept positions of a row with room for `capacity` values: every non-zero, or the
// `capacity` largest magnitudes (ties: the lower position) where there are more; in order. Their
// largest magnitude in *amax.
std::vector<int64_t> KeptPositions(const float* x, int64_t n, int64_t capacity, float* amax) {
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n; ++i)
    if (x[i] != 0.0f) kept.push_back(i);
  if ((int64_t)kept.size() > capacity) {
    std::stable_sort(kept.begin(), kept.end(), [&](int64_t a, int64_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
    kept.resize(capacity);
    std::sort(kept.begin(), kept.end());
  }
  *amax = 0.0f;
  for (int64_t i : kept) *amax = std::max(*amax, std::fabs(x[i]));
  return kept;
}

// The masks of the kept positions of a row of n weights, written after its header.
void WriteMasks(const std::vector<int64_t>& kept, int64_t n, uint8_t* row) {
  std::vector<uint32_t> masks((size_t)(n / kQKSparseMask), 0);
  for (int64_t i : kept) masks[(size_t)(i / kQKSparseMask)] |= 1u << (i % kQKSparseMask);
  std::memcpy(row + kSparseMaskOffset, masks.data(), 4 * masks.size());
}

}  // namespace

template <int Cap>
void SparseMaskRow<Cap>::Quantize(const float* x, void* row, int64_t n) {
  auto* p = static_cast<uint8_t*>(row);
  const int64_t capacity = Cap * (n / kBlock);
  float amax;
  const std::vector<int64_t> kept = KeptPositions(x, n, capacity, &amax);
  const RowHeaderSparseMask h{amax / 127.0f};
  const float id = h.d != 0.0f ? 1.0f / h.d : 0.0f;
  std::memcpy(p, &h, sizeof h);
  WriteMasks(kept, n, p);
  auto* codes = reinterpret_cast<int8_t*>(p + SparseCodesOffset(n));
  std::fill(codes, codes + capacity, 0);
  for (size_t k = 0; k < kept.size(); ++k) codes[k] = (int8_t)std::clamp(RoundToInt(x[kept[k]] * id), -127, 127);
}

template <int Cap>
void SparseMaskRowF16<Cap>::Dequantize(const void* row, float* y, int64_t n) {
  RowHeaderSparseMask h;
  std::memcpy(&h, row, sizeof h);
  std::fill(y, y + n, 0.0f);
  ForEachStoredValue<Cap, uint16_t>(row, n, [&](int64_t i, uint16_t v) { y[i] = h.d * Fp16ToFloat(v); });
}

template <int Cap>
void SparseMaskRowF16<Cap>::Quantize(const float* x, void* row, int64_t n) {
  auto* p = static_cast<uint8_t*>(row);
  const int64_t capacity = Cap * (n / kBlock);
  float amax;
  const std::vector<int64_t> kept = KeptPositions(x, n, capacity, &amax);
  const RowHeaderSparseMask h{amax > 65504.0f ? amax / 65504.0f : 1.0f};
  std::memcpy(p, &h, sizeof h);
  WriteMasks(kept, n, p);
  uint8_t* values = p + SparseCodesOffset(n);
  std::fill(values, values + 2 * capacity, 0);
  for (size_t k = 0; k < kept.size(); ++k) {
    const fp16_t v = FloatToFp16(x[kept[k]] / h.d);
    std::memcpy(values + 2 * k, &v, sizeof v);
  }
}

template struct SparseMaskRow<16>;
template struct SparseMaskRow<10>;
template struct SparseMaskRowF16<16>;
template struct SparseMaskRowF16<10>;

}  // namespace smelt
