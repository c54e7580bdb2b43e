#include "formats/kmeans.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "formats/bitpack.h"

namespace smelt {
namespace {

// Weighted 1-D k-means of x[0..n) (w: importances, nullptr for ones) into K sorted centroids.
void KMeans1D(const float* x, const float* w, int64_t n, int K, float* centroids) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = std::isfinite(x[i]) ? x[i] : 0.0f;
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return v[a] < v[b] || (v[a] == v[b] && a < b); });
  // Prefix sums over the sorted values: Σw and Σw·x of any run in O(1).
  std::vector<double> sx(n + 1, 0.0), sw(n + 1, 0.0);
  double total_w = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double wi = w && std::isfinite(w[order[i]]) && w[order[i]] > 0 ? w[order[i]] : (w ? 0.0 : 1.0);
    sw[i + 1] = sw[i] + wi;
    sx[i + 1] = sx[i] + wi * v[order[i]];
    total_w += wi;
  }
  if (!(total_w > 0)) {  // all importances zero: plain k-means
    for (int64_t i = 0; i < n; ++i) sw[i + 1] = (double)(i + 1), sx[i + 1] = sx[i] + v[order[i]];
    total_w = (double)n;
  }
  auto sorted = [&](int64_t i) { return (double)v[order[i]]; };
  // Start: the weighted quantiles at (k + ½)/K.
  std::vector<double> c(K);
  for (int k = 0; k < K; ++k) {
    const double target = (k + 0.5) / K * total_w;
    const int64_t i = std::min<int64_t>(n - 1, std::lower_bound(sw.begin() + 1, sw.end(), target) - (sw.begin() + 1));
    c[k] = sorted(i);
  }
  // Lloyd: clusters are runs split at the midpoints between neighbouring centroids.
  std::vector<int64_t> start(K + 1), prev(K + 1, -1);
  for (int round = 0; round < 30; ++round) {
    std::sort(c.begin(), c.end());
    start[0] = 0, start[K] = n;
    for (int k = 1; k < K; ++k) {
      const double mid = 0.5 * (c[k - 1] + c[k]);
      // First sorted index whose value is above the midpoint (ties go to the lower centroid).
      int64_t lo = start[k - 1], hi = n;
      while (lo < hi) {
        const int64_t m = (lo + hi) / 2;
        if (sorted(m) <= mid) lo = m + 1; else hi = m;
      }
      start[k] = lo;
    }
    if (start == prev) break;
    prev = start;
    for (int k = 0; k < K; ++k) {
      const double ww = sw[start[k + 1]] - sw[start[k]];
      // The cluster's mean, kept inside its run (rounding must not leave float's range); an empty
      // cluster keeps its place.
      if (ww > 0) c[k] = std::clamp((sx[start[k + 1]] - sx[start[k]]) / ww, sorted(start[k]), sorted(start[k + 1] - 1));
    }
  }
  std::sort(c.begin(), c.end());
  for (int k = 0; k < K; ++k) centroids[k] = (float)c[k];
}

// Index of the centroid nearest to x among sorted c[0..K) (ties to the lower one).
int NearestCentroid(const float* c, int K, float x) {
  if (!std::isfinite(x)) x = 0.0f;
  int best = 0;
  float best_d = std::fabs(x - c[0]);
  for (int k = 1; k < K; ++k) {
    const float d = std::fabs(x - c[k]);
    if (d < best_d) best = k, best_d = d;
  }
  return best;
}

template <int Bits>
void Encode(const float* x, const float* w, void* row, int64_t n) {
  using R = RowKMeans<Bits>;
  typename R::Header h;
  float c[R::kCentroids];
  KMeans1D(x, w, n, R::kCentroids, c);
  for (int k = 0; k < R::kCentroids; ++k) h.centroid[k] = FloatToFp16(c[k]), c[k] = Fp16ToFloat(h.centroid[k]);
  std::vector<uint8_t> codes(n);
  for (int64_t i = 0; i < n; ++i) codes[i] = (uint8_t)NearestCentroid(c, R::kCentroids, x[i]);
  std::memcpy(row, &h, R::kHeader);
  PackCodes(codes.data(), (int)n, Bits, static_cast<uint8_t*>(row) + R::kHeader);
}

}  // namespace

template <int Bits>
void RowKMeans<Bits>::Dequantize(const void* row, float* y, int64_t n) {
  Header h;
  std::memcpy(&h, row, kHeader);
  float c[kCentroids];
  for (int k = 0; k < kCentroids; ++k) c[k] = Fp16ToFloat(h.centroid[k]);
  const uint8_t* packed = static_cast<const uint8_t*>(row) + kHeader;
  for (int64_t i = 0; i < n; ++i) y[i] = c[UnpackCode(packed, (int)i, Bits)];
}

template <int Bits>
void RowKMeans<Bits>::Quantize(const float* x, void* row, int64_t n) {
  Encode<Bits>(x, nullptr, row, n);
}

template <int Bits>
void RowKMeans<Bits>::QuantizeWeighted(const float* x, const float* w, void* row, int64_t n) {
  Encode<Bits>(x, w, row, n);
}

template struct RowKMeans<4>;
template struct RowKMeans<3>;
template struct RowKMeans<2>;

}  // namespace smelt
