#include "formats/sparse_mask.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "formats/quant_util.h"

namespace smelt {

template <int Cap>
void SparseMaskRow<Cap>::Dequantize(const void* row, float* y, int64_t n) {
  RowHeaderSparseMask h;
  std::memcpy(&h, row, sizeof h);
  std::fill(y, y + n, 0.0f);
  ForEachStoredWeight<Cap>(row, n, [&](int64_t i, int8_t q) { y[i] = h.d * (float)q; });
}

template <int Cap>
void SparseMaskRow<Cap>::Quantize(const float* x, void* row, int64_t n) {
  auto* p = static_cast<uint8_t*>(row);
  const int64_t capacity = Cap * (n / kBlock);
  // The kept positions: every non-zero, or the `capacity` largest magnitudes where there are more.
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n; ++i)
    if (x[i] != 0.0f) kept.push_back(i);
  if ((int64_t)kept.size() > capacity) {
    std::stable_sort(kept.begin(), kept.end(), [&](int64_t a, int64_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
    kept.resize(capacity);
    std::sort(kept.begin(), kept.end());
  }
  float amax = 0.0f;
  for (int64_t i : kept) amax = std::max(amax, std::fabs(x[i]));
  const RowHeaderSparseMask h{amax / 127.0f};
  const float id = h.d != 0.0f ? 1.0f / h.d : 0.0f;
  std::memcpy(p, &h, sizeof h);
  std::vector<uint32_t> masks((size_t)(n / kBlock), 0);
  auto* codes = reinterpret_cast<int8_t*>(p + SparseCodesOffset(n));
  std::fill(codes, codes + capacity, 0);
  for (size_t k = 0; k < kept.size(); ++k) {
    masks[(size_t)(kept[k] / kBlock)] |= 1u << (kept[k] % kBlock);
    codes[k] = (int8_t)std::clamp(RoundToInt(x[kept[k]] * id), -127, 127);
  }
  std::memcpy(p + kSparseMaskOffset, masks.data(), 4 * masks.size());
}

template struct SparseMaskRow<16>;
template struct SparseMaskRow<10>;

}  // namespace smelt
