#include "formats/scale_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace smelt {
namespace {

// Index of the entry of sorted values[0..n) nearest to v (ties to the lower entry).
int Nearest(const float* values, int n, float v) {
  const float* it = std::lower_bound(values, values + n, v);
  if (it == values) return 0;
  if (it == values + n) return n - 1;
  return (*it - v) < (v - *(it - 1)) ? (int)(it - values) : (int)(it - values) - 1;
}

// Codes of one candidate: on the stack for blocks (n <= 256), on the heap for whole rows.
class CodeScratch {
 public:
  explicit CodeScratch(int n) {
    if (n > (int)sizeof(stack_)) heap_.resize(n);
  }
  uint8_t* data() { return heap_.empty() ? stack_ : heap_.data(); }

 private:
  uint8_t stack_[256];
  std::vector<uint8_t> heap_;
};

}  // namespace

const float* WeightsOrOnes(const float* w, int n, float* ones) {
  for (int j = 0; j < n; ++j)
    if (w[j] > 0) return w;
  for (int j = 0; j < n; ++j) ones[j] = 1.0f;
  return ones;
}

void IntegerLevels(int lo, int hi, float* out) {
  for (int v = lo; v <= hi; ++v) out[v - lo] = (float)v;
}

float SearchSymmetricScale(const float* x, const float* w, int n, const float* values, int n_values) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (!(amax > 0)) return 0.0f;
  const float lo = values[0], hi = values[n_values - 1];
  float best_d = 0, best_err = std::numeric_limits<float>::infinity();
  CodeScratch scratch(n);
  uint8_t* q = scratch.data();
  // Candidate ends: the extreme value at the codebook's bottom or top, nudged in steps of 1.25 %
  // (a tenth of a level of a 4-bit code).
  for (float end : {lo, hi}) {
    if (end == 0) continue;
    for (int s = -9; s <= 9; ++s) {
      const float target = end * (1.0f + 0.0125f * (float)s);
      const float d0 = max / target;
      if (!(d0 > 0) && !(d0 < 0)) continue;
      ChooseCodesSymmetric(x, n, d0, values, n_values, q);
      double sxv = 0, svv = 0;
      for (int i = 0; i < n; ++i) sxv += (double)w[i] * x[i] * values[q[i]], svv += (double)w[i] * values[q[i]] * values[q[i]];
      if (svv <= 0) continue;
      const float d = (float)(sxv / svv);
      double err = 0;
      for (int i = 0; i < n; ++i) {
        const double e = x[i] - (double)d * values[q[i]];
        err += w[i] * e * e;
      }
      if (err < best_err) best_err = (float)err, best_d = d;
    }
  }
  return best_d;
}

void ChooseCodesSymmetric(const float* x, int n, float d, const float* values, int n_values, uint8_t* codes) {
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int i = 0; i < n; ++i) codes[i] = (uint8_t)Nearest(values, n_values, x[i] * id);
}

float SearchAsymmetricScale(const float* x, const float* w, int n, int qmax, float* m_out) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  if (!(hi > lo)) {  // constant block: d = 0, every value is the minimum
    *m_out = lo;
    return 0.0f;
  }
  float best_d = (hi - lo) / qmax, best_m = lo, best_err = std::numeric_limits<float>::infinity();
  CodeScratch scratch(n);
  uint8_t* q = scratch.data();
  for (int s = 0; s <= 20; ++s) {
    const float iscale = ((float)qmax - 1.0f + 0.1f * (float)s) / (hi - lo);
    for (int i = 0; i < n; ++i) q[i] = (uint8_t)std::clamp((int)std::lround(iscale * (x[i] - lo)), 0, qmax);
    // Weighted least squares for x ≈ d·q + m: the 2×2 normal equations.
    double sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
    for (int i = 0; i < n; ++i) {
      sw += w[i], sq += (double)w[i] * q[i], sqq += (double)w[i] * q[i] * q[i];
      sx += (double)w[i] * x[i], sxq += (double)w[i] * x[i] * q[i];
    }
    const double det = sw * sqq - sq * sq;
    if (!(det > 0)) continue;
    const float d = (float)((sw * sxq - sq * sx) / det), m = (float)((sqq * sx - sq * sxq) / det);
    if (!(d > 0)) continue;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = x[i] - ((double)d * q[i] + m);
      err += w[i] * e * e;
    }
    if (err < best_err) best_err = (float)err, best_d = d, best_m = m;
  }
  *m_out = best_m;
  return best_d;
}

void ChooseCodesAsymmetric(const float* x, int n, float d, float m, int qmax, uint8_t* codes) {
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int i = 0; i < n; ++i) codes[i] = (uint8_t)std::clamp((int)std::lround((x[i] - m) * id), 0, qmax);
}

}  // namespace smelt
