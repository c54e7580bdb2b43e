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

// A bitmask row of n weights with room for `capacity` values of sizeof(V) bytes: the kept
// positions (KeptPositions), the header d = scale(their largest magnitude), the masks, then
// encode(x, d) for each kept value in order and zeros up to the capacity.
template <class V, class Scale, class Encode>
void WriteMaskRow(const float* x, void* row, int64_t n, int64_t capacity, Scale scale, Encode encode) {
  auto* p = static_cast<uint8_t*>(row);
  float amax;
  const std::vector<int64_t> kept = KeptPositions(x, n, capacity, &amax);
  const RowHeaderSparseMask h{scale(amax)};
  std::memcpy(p, &h, sizeof h);
  std::vector<uint32_t> masks((size_t)(n / kQKSparseMask), 0);
  for (int64_t i : kept) masks[(size_t)(i / kQKSparseMask)] |= 1u << (i % kQKSparseMask);
  std::memcpy(p + kSparseMaskOffset, masks.data(), 4 * masks.size());
  uint8_t* values = p + SparseCodesOffset(n);
  std::fill(values, values + sizeof(V) * capacity, 0);
  for (size_t k = 0; k < kept.size(); ++k) {
    const V v = encode(x[kept[k]], h.d);
    std::memcpy(values + sizeof(V) * k, &v, sizeof v);
  }
}

}  // namespace

template <int Cap>
void SparseMaskRow<Cap>::Quantize(const float* x, void* row, int64_t n) {
  WriteMaskRow<int8_t>(
      x, row, n, Cap * (n / kBlock), [](float amax) { return amax / 127.0f; },
      [](float v, float d) {
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        return (int8_t)std::clamp(RoundToInt(v * id), -127, 127);
      });
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
  WriteMaskRow<fp16_t>(
      x, row, n, Cap * (n / kBlock), [](float amax) { return amax > 65504.0f ? amax / 65504.0f : 1.0f; },
      [](float v, float d) { return FloatToFp16(v / d); });
}

template <int Cap>
void SparseMaskRowW4<Cap>::Dequantize(const void* row, float* y, int64_t n) {
  const float d = ViewSparseMaskW4Row(row, n, Cap).d;
  std::fill(y, y + n, 0.0f);
  ForEachStoredW4<Cap>(row, n, [&](int64_t i, int q, int s) { y[i] = d * (float)s * (float)q; });
}

template <int Cap>
void SparseMaskRowW4<Cap>::Quantize(const float* x, void* row, int64_t n) {
  auto* p = static_cast<uint8_t*>(row);
  float amax;
  const std::vector<int64_t> kept = KeptPositions(x, n, Cap * (n / kBlock), &amax);
  const RowHeaderSparseMask h{amax / (7.0f * 255.0f)};
  std::memcpy(p, &h, sizeof h);
  std::vector<uint32_t> masks((size_t)(n / kQKSparseMask), 0);
  for (int64_t i : kept) masks[(size_t)(i / kQKSparseMask)] |= 1u << (i % kQKSparseMask);
  std::memcpy(p + kSparseMaskOffset, masks.data(), 4 * masks.size());
  const SparseMaskW4RowView v = ViewSparseMaskW4Row(row, n, Cap);
  auto* multipliers = const_cast<uint8_t*>(v.multipliers);
  auto* codes = const_cast<uint8_t*>(v.codes);
  std::fill(multipliers, multipliers + v.capacity / kSparseW4Run, (uint8_t)0);
  std::fill(codes, codes + v.capacity / 2, (uint8_t)0x88);  // q = 0 past the stored weights
  auto code = [](float v, float step) { return step > 0.0f ? std::clamp(RoundToInt(v / step), -8, 7) : 0; };
  for (size_t k0 = 0; k0 < kept.size(); k0 += kSparseW4Run) {
    const size_t k1 = std::min(kept.size(), k0 + kSparseW4Run);
    float run_max = 0.0f, run_min = 0.0f;  // the largest magnitude; the most negative value
    for (size_t k = k0; k < k1; ++k) {
      run_max = std::max(run_max, std::fabs(x[kept[k]]));
      run_min = std::min(run_min, x[kept[k]]);
    }
    // The multiplier with the least squared error of the run among those that put its largest
    // magnitude at ±7 (rounded up, so no clamping) or its most negative value at −8, and their
    // neighbours. (Non-finite inputs: TruncToInt reads NaN as 0, so s stays in 1..255.)
    int s = 0;
    if (run_max > 0.0f && h.d > 0.0f) {
      const int up = std::clamp(TruncToInt(std::ceil(run_max / (7.0f * h.d))), 1, 255);
      const int negative = std::clamp(TruncToInt(std::ceil(-run_min / (8.0f * h.d))), 1, 255);
      double best = INFINITY;
      for (int c : {up, up - 1, up - 2, up + 1, negative, negative - 1, negative + 1}) {
        if (c < 1 || c > 255) continue;
        const float step = h.d * (float)c;
        double err = 0;
        for (size_t k = k0; k < k1; ++k) {
          const double e = (double)x[kept[k]] - (double)(step * (float)code(x[kept[k]], step));
          err += e * e;
        }
        if (err < best) best = err, s = c;
      }
      if (s == 0) s = up;  // every error non-finite
    }
    multipliers[k0 / kSparseW4Run] = (uint8_t)s;
    const float step = h.d * (float)s;
    for (size_t k = k0; k < k1; ++k) {
      const int q = code(x[kept[k]], step);
      const NibbleAt at = SparseW4Nibble((int64_t)k, v.capacity);
      uint8_t& byte = codes[at.byte];
      byte = (uint8_t)((byte & (0xF0 >> at.shift)) | (q + 8) << at.shift);
    }
  }
}

template struct SparseMaskRowW4<kSp70W4Cap>;
template struct SparseMaskRow<16>;
template struct SparseMaskRow<10>;
template struct SparseMaskRowF16<16>;
template struct SparseMaskRowF16<10>;

}  // namespace smelt
