// Importance-weighted encoders of the k-quants (weighted_quants.h): per super-block, choose the
// stored parameters (fp16 d and dmin, the sub-block scale and min codes, the weight codes) that
// minimise Σ w (x − x̂)² for the importances w, where x̂ is exactly what the type's decoder
// returns.
//
// 1. Each sub-block gets its weighted-MSE-optimal f32 scale (and min) from scale_search.h.
// 2. Those are quantized against a few candidate super-scales around the largest one (for the
//    symmetric types with the extreme at either end of the scale code range); for each
//    candidate every sub-block then picks, among its rounded scale (and min) code and their
//    neighbours ±1, the one with the least weighted error with nearest codes. The candidate
//    with the least total error wins.
// 3. The reference encoding (ggml's bytes, from the fast twin) is the last candidate, so the
//    weighted error is never above what llama-quantize would write without an imatrix.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "formats/k_quants_search.h"
#include "formats/quant_util.h"
#include "formats/scale_search.h"
#include "formats/weighted_quants.h"

namespace smelt {
namespace {

// How a k-quant super-block decodes: sub-block j (of `group` weights) has scale D = d·sc[j]
// and, for the asymmetric types, min M = dmin·mn[j]; weight code q gives D·(q − offset) − M.
struct KLayout {
  int group;       // weights per sub-block
  int qmax;        // weight codes 0..qmax
  int offset;      // symmetric types: code of zero; 0 for the asymmetric ones
  bool asym;       // has dmin and min codes
  int smin, smax;  // scale codes smin..smax; min codes 0..smax
};
constexpr KLayout kLayoutQ2_K{16, 3, 0, true, 0, 15};
constexpr KLayout kLayoutQ3_K{16, 7, 4, false, -32, 31};
constexpr KLayout kLayoutQ4_K{32, 15, 0, true, 0, 63};
constexpr KLayout kLayoutQ5_K{32, 31, 0, true, 0, 63};
constexpr KLayout kLayoutQ6_K{16, 63, 32, false, -128, 127};

// One super-block's stored parameters.
struct KParams {
  fp16_t d = 0, dmin = 0;
  int sc[kQK_K / 16] = {}, mn[kQK_K / 16] = {};
  uint8_t L[kQK_K] = {};
};

// Nearest codes for scale D and min M (D == 0: the code of zero), and their weighted error.
float SubBlockError(const KLayout& f, const float* x, const float* w, float D, float M, uint8_t* q) {
  float err = 0;
  const float iD = D != 0 ? 1.0f / D : 0.0f;  // any rounding slip here is caught by the error
  for (int i = 0; i < f.group; ++i) {
    int c = f.offset;
    if (D != 0) {
      // Clamped in float first so that NearestInt stays in its exact range.
      const float v = std::clamp((x[i] + M) * iD, -1.0f - (float)f.offset, (float)(f.qmax - f.offset) + 1.0f);
      c = std::clamp(NearestInt(v) + f.offset, 0, f.qmax);
    }
    q[i] = (uint8_t)c;
    const float e = x[i] - (D * (float)(c - f.offset) - M);
    err += w[i] * e * e;
  }
  return err;
}

// Step 2 for one candidate pair (d, dmin), already fp16: codes and total error into p.
float QuantizeScales(const KLayout& f, const float* x, const float* w, const float* fs, const float* fm,
                     fp16_t d16, fp16_t dmin16, KParams& p) {
  const float d = Fp16ToFloat(d16), dmin = Fp16ToFloat(dmin16);
  auto code_of = [](float v, float step, int lo, int hi) {
    return step != 0 ? std::clamp(NearestInt(std::clamp(v / step, (float)lo, (float)hi)), lo, hi) : 0;
  };
  p.d = d16, p.dmin = dmin16;
  float total = 0;
  uint8_t q[32];
  for (int j = 0; j < kQK_K / f.group; ++j) {
    const float* xj = x + f.group * j;
    const float* wj = w + f.group * j;
    const int s0 = code_of(fs[j], d, f.smin, f.smax);
    const int m0 = f.asym ? code_of(fm[j], dmin, 0, f.smax) : 0;
    float best = std::numeric_limits<float>::infinity();
    for (int s = std::max(f.smin, s0 - 1); s <= std::min(f.smax, s0 + 1); ++s) {
      for (int m = std::max(0, m0 - 1); m <= (f.asym ? std::min(f.smax, m0 + 1) : 0); ++m) {
        const float e = SubBlockError(f, xj, wj, d * (float)s, dmin * (float)m, q);
        if (e < best || (best == std::numeric_limits<float>::infinity() && s == s0 && m == m0)) {
          best = e, p.sc[j] = s, p.mn[j] = m;
          std::memcpy(p.L + f.group * j, q, (size_t)f.group);
        }
      }
    }
    total += best;
  }
  return total;
}

// Steps 1 and 2: the weighted parameters of one super-block (w already non-zero somewhere).
void SearchParams(const KLayout& f, const float* x, const float* w, KParams& best) {
  const int nsub = kQK_K / f.group;
  float fs[kQK_K / 16], fm[kQK_K / 16] = {};
  float levels[64], ones[32];
  for (int j = 0; j < nsub; ++j) {
    const float* xj = x + f.group * j;
    const float* wj = WeightsOrOnes(w + f.group * j, f.group, ones);
    if (f.asym) {
      float m = 0;
      fs[j] = SearchAsymmetricScale(xj, wj, f.group, f.qmax, &m);
      if (m > 0 || !(fs[j] > 0)) {  // the stored min only lowers values: fit codes 0..qmax alone
        IntegerLevels(0, f.qmax, levels);
        fs[j] = SearchSymmetricScale(xj, wj, f.group, levels, f.qmax + 1);
        m = 0;
      }
      fm[j] = -m;
    } else {
      IntegerLevels(-f.offset, f.qmax - f.offset, levels);
      fs[j] = SearchSymmetricScale(xj, wj, f.group, levels, f.qmax + 1);
    }
  }
  float max_s = 0, max_m = 0, amax = 0;
  for (int j = 0; j < nsub; ++j) {
    max_m = std::max(max_m, fm[j]);
    if (f.asym) {
      max_s = std::max(max_s, fs[j]);
    } else if (std::fabs(fs[j]) > amax) {
      amax = std::fabs(fs[j]), max_s = fs[j];
    }
  }
  // Super-scales putting the extreme sub-block scale at the top code (and, symmetric, at the
  // bottom one), nudged by ±2 % steps; dmin puts the largest min at the top code.
  const float ends[2] = {(float)f.smax, (float)f.smin};
  const fp16_t dmin16 = FloatToFp16(max_m / (float)f.smax);
  float best_err = std::numeric_limits<float>::infinity();
  KParams p;
  for (int e = 0; e < (f.asym ? 1 : 2); ++e) {
    for (int k = -3; k <= 3; ++k) {
      const float d = max_s / (ends[e] * (1.0f + 0.02f * (float)k));
      const float err = QuantizeScales(f, x, w, fs, fm, FloatToFp16(d), dmin16, p);
      if (err < best_err || best_err == std::numeric_limits<float>::infinity()) best_err = err, best = p;
    }
  }
}

// Σ w (x − x̂)² over one super-block, in double.
double WeightedError(const float* x, const float* xh, const float* w) {
  double err = 0;
  for (int i = 0; i < kQK_K; ++i) err += (double)w[i] * ((double)x[i] - xh[i]) * ((double)x[i] - xh[i]);
  return err;
}

// Writers of KParams into each block type.
void StoreKParams(const KParams& p, BlockQ2_K& y) {
  for (int j = 0; j < kQK_K / 16; ++j) y.scales[j] = (uint8_t)(p.sc[j] | (p.mn[j] << 4));
  y.d = p.d, y.dmin = p.dmin;
  kquant::Pack2BitPlanes(p.L, y.qs);
}
void StoreKParams(const KParams& p, BlockQ3_K& y) {
  int8_t sc[kQK_K / 16], L[kQK_K];
  for (int j = 0; j < kQK_K / 16; ++j) sc[j] = (int8_t)p.sc[j];
  for (int i = 0; i < kQK_K; ++i) L[i] = (int8_t)p.L[i];
  kquant::PackQ3Scales(sc, y.scales);
  y.d = p.d;
  kquant::PackQ3KCodes(L, y);
}
template <class Block>
void WriteK4(const KParams& p, Block& y) {
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; ++j) sc[j] = (uint8_t)p.sc[j], mn[j] = (uint8_t)p.mn[j];
  kquant::PackK4Scales(sc, mn, y.scales);
  y.d = p.d, y.dmin = p.dmin;
}
void StoreKParams(const KParams& p, BlockQ4_K& y) {
  WriteK4(p, y);
  kquant::PackQ4KCodes(p.L, y);
}
void StoreKParams(const KParams& p, BlockQ5_K& y) {
  WriteK4(p, y);
  kquant::PackQ5KCodes(p.L, y);
}
void StoreKParams(const KParams& p, BlockQ6_K& y) {
  int8_t L[kQK_K];
  for (int j = 0; j < kQK_K / 16; ++j) y.scales[j] = (int8_t)p.sc[j];
  for (int i = 0; i < kQK_K; ++i) L[i] = (int8_t)p.L[i];
  y.d = p.d;
  kquant::PackQ6KCodes(L, y);
}

// Step 3 and the row loop: per super-block the weighted search or the reference encoding,
// whichever decodes with the smaller weighted error.
template <class Block, void (*Reference)(const float*, Block*, int64_t), void (*Decode)(const Block*, float*, int64_t)>
void QuantizeRowKWeighted(const KLayout& f, const float* x, const float* w, Block* y, int64_t k) {
  std::array<float, kQK_K> ones, xh;
  for (int64_t i = 0; i < k / kQK_K; ++i, x += kQK_K, w += kQK_K) {
    const float* wb = WeightsOrOnes(w, kQK_K, ones.data());
    Reference(x, &y[i], kQK_K);
    Decode(&y[i], xh.data(), kQK_K);
    const double ref_err = WeightedError(x, xh.data(), wb);
    KParams p;
    SearchParams(f, x, wb, p);
    Block cand;
    StoreKParams(p, cand);
    Decode(&cand, xh.data(), kQK_K);
    if (WeightedError(x, xh.data(), wb) < ref_err) y[i] = cand;
  }
}

}  // namespace

void QuantizeRowQ2_KWeighted(const float* x, const float* w, BlockQ2_K* y, int64_t k) {
  QuantizeRowKWeighted<BlockQ2_K, QuantizeRowQ2_K, DequantizeRowQ2_K>(kLayoutQ2_K, x, w, y, k);
}
void QuantizeRowQ3_KWeighted(const float* x, const float* w, BlockQ3_K* y, int64_t k) {
  QuantizeRowKWeighted<BlockQ3_K, QuantizeRowQ3_K, DequantizeRowQ3_K>(kLayoutQ3_K, x, w, y, k);
}
void QuantizeRowQ4_KWeighted(const float* x, const float* w, BlockQ4_K* y, int64_t k) {
  QuantizeRowKWeighted<BlockQ4_K, QuantizeRowQ4_K, DequantizeRowQ4_K>(kLayoutQ4_K, x, w, y, k);
}
void QuantizeRowQ5_KWeighted(const float* x, const float* w, BlockQ5_K* y, int64_t k) {
  QuantizeRowKWeighted<BlockQ5_K, QuantizeRowQ5_K, DequantizeRowQ5_K>(kLayoutQ5_K, x, w, y, k);
}
void QuantizeRowQ6_KWeighted(const float* x, const float* w, BlockQ6_K* y, int64_t k) {
  QuantizeRowKWeighted<BlockQ6_K, QuantizeRowQ6_K, DequantizeRowQ6_K>(kLayoutQ6_K, x, w, y, k);
}

}  // namespace smelt
