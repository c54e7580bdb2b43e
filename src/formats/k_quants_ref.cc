// Reference quantizers of the k-quants (no importance matrix), written to reproduce ggml's
// quantize_row_q{2..6}_K_ref bit for bit: the same searches, the same float expressions in the
// same order (so the same roundings), the same integer conversions.
//
// Per sub-block the scale (and min) is first found in f32 by a small search (MakeQxQuants,
// MakeQ3Quants, MakeQkx2Quants below); the scales of a super-block are then quantized against
// the largest one, and finally every weight is re-quantized with its sub-block's *quantized*
// scale, so codes agree with what the decoder will multiply them by.
//
// The row drivers take the sub-block searches from a table (k_quants_search.h): the scalar ones
// here (QuantizeRow*_KRef) or, where the CPU has AVX2, their bit-identical SIMD twins
// (QuantizeRow*_K, k_quants_avx2.cc). The searches are nearly all of the encoding time.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu.h"
#include "formats/k_quants.h"
#include "formats/k_quants_search.h"
#include "formats/quant_util.h"

namespace smelt {
namespace {


int Clamp(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// Symmetric codes L[i] = l + nmax, l in [-nmax, nmax-1], with weights x^2 (ggml's
// make_qx_quants, rmse_type 1, no importance): starts from the scale that maps the extreme
// value to -nmax, then tries 18 nearby scales and keeps the one with the best weighted
// least-squares fit. Returns the f32 scale.
float MakeQxQuants(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = SignedAbsMax(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::memset(L, 0, (size_t)n);
    return 0.0f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
    L[i] = (int8_t)(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * (float)l;
    suml2 += w * (float)l * (float)l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -((float)nmax + 0.1f * (float)is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * (float)l;
      suml2 += w * (float)l * (float)l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        L[i] = (int8_t)(nmax + Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Symmetric codes for Q3_K (ggml's make_q3_quants with do_rmse): the extreme value maps to
// -nmax, then up to 5 passes of coordinate descent move single codes while the weighted (x^2)
// fit improves. L[i] = l + nmax. Returns the f32 scale.
float MakeQ3Quants(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = SignedAbsMax(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::memset(L, 0, (size_t)n);
    return 0.0f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
    L[i] = (int8_t)l;
    const float w = x[i] * x[i];
    sumlx += w * x[i] * (float)l;
    suml2 += w * (float)l * (float)l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * (float)L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * (float)L[i] * (float)L[i];
        const int new_l = Clamp(NearestInt(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          slx += w * x[i] * (float)new_l;
          sl2 += w * (float)new_l * (float)new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = (int8_t)new_l;
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric codes L[i] in [0, nmax] for x ~ scale * L - the_min (ggml's make_qkx2_quants):
// starts from the min/max fit, then tries nstep+1 scales (nmax + rmin + rdelta*is) / range, each
// refined by a weighted least-squares fit of scale and min, keeping the lowest weighted error
// (absolute error with use_mad, squared otherwise). The min is never positive.
float MakeQkx2Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                     float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                     bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::memset(L, 0, (size_t)n);
    *the_min = -min;
    return 0.0f;
  }
  auto error_of = [&](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };
  float iscale = (float)nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = (uint8_t)Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
    const float diff = scale * (float)L[i] + min - x[i];
    best_error += weights[i] * error_of(diff);
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = (uint8_t)l;
      const float w = weights[i];
      sum_l += w * (float)l;
      sum_l2 += w * (float)l * (float)l;
      sum_xl += w * (float)l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * (float)Laux[i] + this_min - x[i];
        cur_error += weights[i] * error_of(diff);
      }
      if (cur_error < best_error) {
        std::memcpy(L, Laux, (size_t)n);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Quantizes 8 scales and 8 mins (both >= 0 in practice) to 6 bits against their maxima and
// packs them into Q4_K/Q5_K's 12 bytes; sets d and dmin.
void PackScalesMinsK4(const float* scales, const float* mins, float max_scale, float max_min,
                      uint8_t* packed, fp16_t* d, fp16_t* dmin) {
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t sc[kQK_K / 32], m[kQK_K / 32];
  for (int j = 0; j < kQK_K / 32; ++j) {
    // As ggml: the code goes through uint8_t before the clamp to 63.
    const uint8_t ls = std::min<uint8_t>(63, (uint8_t)NearestInt(inv_scale * scales[j]));
    const uint8_t lm = std::min<uint8_t>(63, (uint8_t)NearestInt(inv_min * mins[j]));
    sc[j] = ls;
    m[j] = lm;
  }
  kquant::PackK4Scales(sc, m, packed);
  *d = FloatToFp16(max_scale / 63.f);
  *dmin = FloatToFp16(max_min / 63.f);
}

// Q4_K/Q5_K's search: per 32-weight sub-block, weights av|x| + |x| and a MakeQkx2Quants search.
void SearchK4Ref(const float* x, int nmax, float rmin, int nstep, float* scales, float* mins, uint8_t* L) {
  float weights[32];
  uint8_t Laux[32];
  for (int j = 0; j < kQK_K / 32; ++j) {
    const float* xb = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xb[l] * xb[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xb[l]);
    scales[j] = MakeQkx2Quants(32, nmax, xb, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                               nstep, false);
  }
}

// Q2_K's search: per 16-weight sub-block, weights |x| and a MakeQkx2Quants search (absolute error).
void SearchQ2Ref(const float* x, float* scales, float* mins, uint8_t* L) {
  float weights[16];
  uint8_t Laux[16];
  for (int j = 0; j < kQK_K / 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = MakeQkx2Quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                               0.1f, 15, true);
  }
}

void SearchQ3Ref(const float* x, float* scales, int8_t* L) {
  for (int j = 0; j < kQK_K / 16; ++j) scales[j] = MakeQ3Quants(16, 4, x + 16 * j, L + 16 * j);
}

void SearchQ6Ref(const float* x, float* scales, int8_t* L) {
  for (int j = 0; j < kQK_K / 16; ++j) scales[j] = MakeQxQuants(16, 32, x + 16 * j, L + 16 * j);
}

// The shared first half of Q4_K/Q5_K: the sub-block search, then scales/mins packed and codes
// re-quantized with the packed values. L gets codes 0..nmax for all 256 weights.
void QuantizeSuperBlockK4(const kquant::Searches& s, const float* x, int nmax, float rmin, int nstep,
                          uint8_t* packed, fp16_t* d, fp16_t* dmin, uint8_t* L) {
  float scales[kQK_K / 32], mins[kQK_K / 32];
  s.k4(x, nmax, rmin, nstep, scales, mins, L);
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQK_K / 32; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  PackScalesMinsK4(scales, mins, max_scale, max_min, packed, d, dmin);
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t sc, m;
    GetScaleMinK4(j, packed, &sc, &m);
    const float dj = Fp16ToFloat(*d) * (float)sc;
    if (dj == 0.0f) continue;
    const float dm = Fp16ToFloat(*dmin) * (float)m;
    for (int l = 0; l < 32; ++l) {
      L[32 * j + l] = (uint8_t)Clamp(NearestInt((x[32 * j + l] + dm) / dj), 0, nmax);
    }
  }
}

void QuantizeRowQ2_KWith(const kquant::Searches& s, const float* x, BlockQ2_K* y, int64_t k) {
  const int64_t nb = k / kQK_K;
  const float q4scale = 15.f;
  uint8_t L[kQK_K];
  float mins[kQK_K / 16], scales[kQK_K / 16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    s.q2(x, scales, mins, L);
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) y[i].scales[j] = (uint8_t)NearestInt(iscale * scales[j]);
      y[i].d = FloatToFp16(max_scale / q4scale);
    } else {
      std::memset(y[i].scales, 0, sizeof(y[i].scales));
      y[i].d = FloatToFp16(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < kQK_K / 16; ++j) {
        y[i].scales[j] |= (uint8_t)(NearestInt(iscale * mins[j]) << 4);
      }
      y[i].dmin = FloatToFp16(max_min / q4scale);
    } else {
      y[i].dmin = FloatToFp16(0.f);
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = Fp16ToFloat(y[i].d) * (float)(y[i].scales[j] & 0x0f);
      if (d == 0.0f) continue;
      const float dm = Fp16ToFloat(y[i].dmin) * (float)(y[i].scales[j] >> 4);
      for (int l = 0; l < 16; ++l) {
        L[16 * j + l] = (uint8_t)Clamp(NearestInt((x[16 * j + l] + dm) / d), 0, 3);
      }
    }
    kquant::Pack2BitPlanes(L, y[i].qs);
  }
}

void QuantizeRowQ3_KWith(const kquant::Searches& s, const float* x, BlockQ3_K* y, int64_t k) {
  const int64_t nb = k / kQK_K;
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    s.q3(x, scales, L);
    float amax;
    const float max_scale = SignedAbsMax(scales, kQK_K / 16, &amax);
    if (max_scale != 0.0f) {
      const float iscale = -32.f / max_scale;
      int8_t sc[kQK_K / 16];
      // As ggml: the code passes through int8_t, then clamps to 6 bits.
      for (int j = 0; j < kQK_K / 16; ++j) sc[j] = (int8_t)Clamp((int8_t)NearestInt(iscale * scales[j]), -32, 31);
      kquant::PackQ3Scales(sc, y[i].scales);
      y[i].d = FloatToFp16(1 / iscale);
    } else {
      std::memset(y[i].scales, 0, sizeof(y[i].scales));  // as ggml: zero bytes, not code 0
      y[i].d = FloatToFp16(0.f);
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = Fp16ToFloat(y[i].d) * (float)Q3KScale(y[i].scales, j);
      if (d == 0.0f) continue;
      for (int l = 0; l < 16; ++l) {
        L[16 * j + l] = (int8_t)(Clamp(NearestInt(x[16 * j + l] / d), -4, 3) + 4);
      }
    }
    kquant::PackQ3KCodes(L, y[i]);
  }
}

void QuantizeRowQ4_KWith(const kquant::Searches& s, const float* x, BlockQ4_K* y, int64_t k) {
  const int64_t nb = k / kQK_K;
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    QuantizeSuperBlockK4(s, x, 15, -1.f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
    kquant::PackQ4KCodes(L, y[i]);
  }
}

void QuantizeRowQ5_KWith(const kquant::Searches& s, const float* x, BlockQ5_K* y, int64_t k) {
  const int64_t nb = k / kQK_K;
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    QuantizeSuperBlockK4(s, x, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
    kquant::PackQ5KCodes(L, y[i]);
  }
}

void QuantizeRowQ6_KWith(const kquant::Searches& s, const float* x, BlockQ6_K* y, int64_t k) {
  const int64_t nb = k / kQK_K;
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    s.q6(x, scales, L);
    float max_abs_scale;
    const float max_scale = SignedAbsMax(scales, kQK_K / 16, &max_abs_scale);
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(y[i]));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = FloatToFp16(1 / iscale);
    for (int ib = 0; ib < kQK_K / 16; ++ib) {
      y[i].scales[ib] = (int8_t)std::min(127, NearestInt(iscale * scales[ib]));
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = Fp16ToFloat(y[i].d) * (float)y[i].scales[j];
      if (d == 0.0f) continue;
      for (int l = 0; l < 16; ++l) {
        L[16 * j + l] = (int8_t)(Clamp(NearestInt(x[16 * j + l] / d), -32, 31) + 32);
      }
    }
    kquant::PackQ6KCodes(L, y[i]);
  }
}

// The encoder that llama-quantize's bytes come from: the AVX2 searches where the CPU has AVX2
// (same bits), else the scalar reference.
const kquant::Searches& FastestSearches() {
  const kquant::Searches* avx2 = CpuHasAvx2() ? kquant::Avx2Searches() : nullptr;
  return avx2 ? *avx2 : kquant::ReferenceSearches();
}

}  // namespace

namespace kquant {

void Pack2BitPlanes(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                (L[j + l + 96] << 6));
    }
  }
}

void PackK4Scales(const uint8_t* sc, const uint8_t* m, uint8_t* packed) {
  for (int j = 0; j < kQK_K / 32; ++j) {
    if (j < 4) {
      packed[j] = sc[j];
      packed[j + 4] = m[j];
    } else {
      packed[j + 4] = (uint8_t)((sc[j] & 0x0f) | ((m[j] & 0x0f) << 4));
      packed[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
      packed[j] |= (uint8_t)((m[j] >> 4) << 6);
    }
  }
}

void PackQ3Scales(const int8_t* sc, uint8_t* scales) {
  std::memset(scales, 0, kKScaleSize);
  for (int j = 0; j < kQK_K / 16; ++j) {
    const int l = sc[j] + 32;
    if (j < 8) {
      scales[j] = (uint8_t)(l & 0x0f);
    } else {
      scales[j - 8] |= (uint8_t)((l & 0x0f) << 4);
    }
    scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
  }
}

void PackQ3KCodes(const int8_t* L, BlockQ3_K& y) {
  // Third bit: weight e -> hmask[e % 32], bit e / 32; the low two bits go to the planes.
  std::memset(y.hmask, 0, sizeof(y.hmask));
  uint8_t low[kQK_K];
  for (int e = 0; e < kQK_K; ++e) {
    if (L[e] > 3) y.hmask[e % 32] |= (uint8_t)(1 << (e / 32));
    low[e] = (uint8_t)(L[e] & 3);
  }
  Pack2BitPlanes(low, y.qs);
}

void PackQ4KCodes(const uint8_t* L, BlockQ4_K& y) {
  uint8_t* q = y.qs;
  for (int j = 0; j < kQK_K; j += 64, q += 32) {
    for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
  }
}

void PackQ5KCodes(const uint8_t* L, BlockQ5_K& y) {
  std::memset(y.qh, 0, sizeof(y.qh));
  uint8_t* ql = y.qs;
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j], l2 = L[n + j + 32];
      if (l1 > 15) {
        l1 -= 16;
        y.qh[j] |= m1;
      }
      if (l2 > 15) {
        l2 -= 16;
        y.qh[j] |= m2;
      }
      ql[j] = (uint8_t)(l1 | (l2 << 4));
    }
  }
}

void PackQ6KCodes(const int8_t* L, BlockQ6_K& y) {
  // Weight e of each 128-half: ql nibble and 2 qh bits as described in k_quants.h.
  uint8_t* ql = y.ql;
  uint8_t* qh = y.qh;
  for (int j = 0; j < kQK_K; j += 128, ql += 64, qh += 32) {
    for (int l = 0; l < 32; ++l) {
      const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
      ql[l] = (uint8_t)((q1 & 0x0f) | ((q3 & 0x0f) << 4));
      ql[l + 32] = (uint8_t)((q2 & 0x0f) | ((q4 & 0x0f) << 4));
      qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
}

const Searches& ReferenceSearches() {
  static constexpr Searches kRef{SearchK4Ref, SearchQ2Ref, SearchQ3Ref, SearchQ6Ref};
  return kRef;
}
}  // namespace kquant

void QuantizeRowQ2_KRef(const float* x, BlockQ2_K* y, int64_t k) {
  QuantizeRowQ2_KWith(kquant::ReferenceSearches(), x, y, k);
}
void QuantizeRowQ2_K(const float* x, BlockQ2_K* y, int64_t k) { QuantizeRowQ2_KWith(FastestSearches(), x, y, k); }
void QuantizeRowQ3_KRef(const float* x, BlockQ3_K* y, int64_t k) {
  QuantizeRowQ3_KWith(kquant::ReferenceSearches(), x, y, k);
}
void QuantizeRowQ3_K(const float* x, BlockQ3_K* y, int64_t k) { QuantizeRowQ3_KWith(FastestSearches(), x, y, k); }
void QuantizeRowQ4_KRef(const float* x, BlockQ4_K* y, int64_t k) {
  QuantizeRowQ4_KWith(kquant::ReferenceSearches(), x, y, k);
}
void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t k) { QuantizeRowQ4_KWith(FastestSearches(), x, y, k); }
void QuantizeRowQ5_KRef(const float* x, BlockQ5_K* y, int64_t k) {
  QuantizeRowQ5_KWith(kquant::ReferenceSearches(), x, y, k);
}
void QuantizeRowQ5_K(const float* x, BlockQ5_K* y, int64_t k) { QuantizeRowQ5_KWith(FastestSearches(), x, y, k); }
void QuantizeRowQ6_KRef(const float* x, BlockQ6_K* y, int64_t k) {
  QuantizeRowQ6_KWith(kquant::ReferenceSearches(), x, y, k);
}
void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t k) { QuantizeRowQ6_KWith(FastestSearches(), x, y, k); }

}  // namespace smelt
