#include "formats/outliers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "formats/types.h"

namespace smelt {
namespace {

// Columns of the K largest saliencies (non-finite ones count as 0), ascending.
std::vector<int64_t> MostSalient(const float* x, const float* w, int64_t n, int K) {
  std::vector<double> sal(n);
  for (int64_t i = 0; i < n; ++i) {
    const double v = std::isfinite(x[i]) ? x[i] : 0.0;
    const double imp = w ? (std::isfinite(w[i]) && w[i] > 0 ? w[i] : 0.0) : 1.0;
    sal[i] = w ? imp * v * v : std::fabs(v);
  }
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  const int64_t k = std::min<int64_t>(K, n);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int64_t a, int64_t b) { return sal[a] > sal[b] || (sal[a] == sal[b] && a < b); });
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

template <DType Base, int K>
void Encode(const float* x, const float* w, void* row, int64_t n) {
  const std::vector<int64_t> cols = MostSalient(x, w, n, K);
  RowOutlier header[K] = {};
  std::vector<float> dense(x, x + n), imp;
  if (w) imp.assign(w, w + n);
  for (size_t k = 0; k < cols.size(); ++k) {
    const int64_t c = cols[k];
    header[k] = {(uint16_t)(c & 0xffff), (uint16_t)(c >> 16), FloatToFp16(x[c])};
    dense[c] = 0.0f;
    if (w) imp[c] = 0.0f;
  }
  std::memcpy(row, header, sizeof header);
  void* body = static_cast<uint8_t*>(row) + sizeof header;
  const TypeTraits& base = Traits(Base);
  if (w && base.from_float_weighted) {
    base.from_float_weighted(dense.data(), imp.data(), body, n);
  } else {
    base.from_float(dense.data(), body, n);
  }
}

}  // namespace

template <DType Base, int K>
void RowWithOutliers<Base, K>::Dequantize(const void* row, float* y, int64_t n) {
  RowOutlier header[K];
  std::memcpy(header, row, sizeof header);
  Traits(Base).to_float(static_cast<const uint8_t*>(row) + sizeof header, y, n);
  for (const RowOutlier& o : header) {
    const int64_t c = (int64_t)o.col_lo | (int64_t)o.col_hi << 16;
    if (c < n) y[c] = Fp16ToFloat(o.value);  // a foreign file's out-of-range column is ignored
  }
}

template <DType Base, int K>
void RowWithOutliers<Base, K>::Quantize(const float* x, void* row, int64_t n) {
  Encode<Base, K>(x, nullptr, row, n);
}

template <DType Base, int K>
void RowWithOutliers<Base, K>::QuantizeWeighted(const float* x, const float* w, void* row, int64_t n) {
  Encode<Base, K>(x, w, row, n);
}

template struct RowWithOutliers<DType::kQ4_0, 8>;
template struct RowWithOutliers<DType::kI3S_G32, 8>;

}  // namespace smelt
