#include "formats/iq4_nl.h"

#include <cmath>

#include "formats/quant_util.h"

namespace smelt {
namespace {


// One block of 32 (ggml's quantize_row_iq4_nl_impl for a super-block of one block, no
// importance weights). ntry > 0: search 2*ntry+1 scales and re-choose codes at the end;
// ntry <= 0: no search (d from max / values[0]).
void QuantizeBlockIQ4_NL(const float* x, BlockIQ4_NL* y, int ntry) {
  const int8_t* values = kIQ4NLValues;
  uint8_t L[kQK4_NL];
  float weight[kQK4_NL];
  for (int j = 0; j < kQK4_NL; ++j) weight[j] = x[j] * x[j];
  float amax;
  const float max = SignedAbsMax(x, kQK4_NL, &amax);
  float d = 0;
  if (amax < kGroupMaxEps) {
    for (int j = 0; j < kQK4_NL; ++j) L[j] = (uint8_t)NearestCodebookIndex(16, values, 0.0f);
  } else {
    d = ntry > 0 ? -max / values[0] : max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < kQK4_NL; ++j) {
      const float al = id * x[j];
      const int l = NearestCodebookIndex(16, values, al);
      L[j] = (uint8_t)l;
      const float q = values[l];
      const float w = weight[j];
      sumqx += w * q * x[j];
      sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
      id = (float)(itry + values[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < kQK4_NL; ++j) {
        const float al = id * x[j];
        const float q = values[NearestCodebookIndex(16, values, al)];
        const float w = weight[j];
        sumqx += w * q * x[j];
        sumq2 += w * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
  }
  y->d = FloatToFp16(d);
  if (ntry > 0) {
    const float id = d != 0.0f ? 1 / d : 0;
    for (int j = 0; j < kQK4_NL; ++j) L[j] = (uint8_t)NearestCodebookIndex(16, values, id * x[j]);
  }
  for (int j = 0; j < kQK4_NL / 2; ++j) y->qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

}  // namespace

int NearestCodebookIndex(int n, const int8_t* values, float v) {
  if (v <= values[0]) return 0;
  if (v >= values[n - 1]) return n - 1;
  int lo = 0, hi = n - 1;  // values[lo] <= v < values[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < values[mid]) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return v - values[hi - 1] < values[hi] - v ? hi - 1 : hi;
}

void DequantizeRowIQ4_NL(const BlockIQ4_NL* x, float* y, int64_t k) {
  const int64_t nb = k / kQK4_NL;
  for (int64_t i = 0; i < nb; ++i, y += kQK4_NL) {
    const float d = Fp16ToFloat(x[i].d);
    for (int j = 0; j < kQK4_NL / 2; ++j) {
      y[j] = d * (float)kIQ4NLValues[x[i].qs[j] & 0x0f];
      y[j + kQK4_NL / 2] = d * (float)kIQ4NLValues[x[i].qs[j] >> 4];
    }
  }
}

void QuantizeRowIQ4_NL(const float* x, BlockIQ4_NL* y, int64_t k) {
  for (int64_t i = 0; i < k / kQK4_NL; ++i) QuantizeBlockIQ4_NL(x + i * kQK4_NL, y + i, 7);
}

void QuantizeRowIQ4_NLRef(const float* x, BlockIQ4_NL* y, int64_t k) {
  for (int64_t i = 0; i < k / kQK4_NL; ++i) QuantizeBlockIQ4_NL(x + i * kQK4_NL, y + i, -1);
}

}  // namespace smelt
