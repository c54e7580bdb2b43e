#include "formats/group_int.h"

#include <algorithm>
#include <array>

#include "formats/bitpack.h"
#include "formats/quant_util.h"
#include "formats/scale_search.h"

namespace smelt {

template <int Bits, bool Symmetric, int Group>
void GroupInt<Bits, Symmetric, Group>::Dequantize(const Block* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / Group; ++i, y += Group) {
    const float d = Fp16ToFloat(x[i].dm[0]);
    const float m = Symmetric ? 0.0f : Fp16ToFloat(x[i].dm[Symmetric ? 0 : 1]);
    for (int j = 0; j < Group; ++j) y[j] = d * (float)(UnpackCode(x[i].qs, j, Bits) + kLo) + m;
  }
}

template <int Bits, bool Symmetric, int Group>
void GroupInt<Bits, Symmetric, Group>::Quantize(const float* x, Block* y, int64_t k) {
  uint8_t codes[Group];
  for (int64_t i = 0; i < k / Group; ++i, x += Group) {
    float d, m = 0.0f;
    if constexpr (Symmetric) {
      float amax;
      d = SignedAbsMax(x, Group, &amax) / (float)kLo;  // the extreme lands on the lowest level
      y[i].dm[0] = FloatToFp16(d);
    } else {
      float lo, hi;
      MinMax(x, Group, &lo, &hi);
      y[i].dm[0] = FloatToFp16((hi - lo) / (float)kHi);
      y[i].dm[Symmetric ? 0 : 1] = FloatToFp16(lo);
      m = Fp16ToFloat(y[i].dm[Symmetric ? 0 : 1]);
    }
    // Codes for the scale as stored, so decoding is off by at most half a step.
    d = Fp16ToFloat(y[i].dm[0]);
    for (int j = 0; j < Group; ++j) {
      const int q = d != 0.0f ? RoundToInt((x[j] - m) / d) : 0;
      codes[j] = (uint8_t)(std::clamp(q, kLo, kHi) - kLo);
    }
    PackCodes(codes, Group, Bits, y[i].qs);
  }
}

template <int Bits, bool Symmetric, int Group>
void GroupInt<Bits, Symmetric, Group>::QuantizeWeighted(const float* x, const float* w, Block* y, int64_t k) {
  static constexpr int kLevels = kHi - kLo + 1;
  static const auto levels = [] {
    std::array<float, kLevels> v;
    IntegerLevels(kLo, kHi, v.data());
    return v;
  }();
  uint8_t codes[Group];
  float ones[Group];
  for (int64_t i = 0; i < k / Group; ++i, x += Group, w += Group) {
    const float* wb = WeightsOrOnes(w, Group, ones);
    if constexpr (Symmetric) {
      y[i].dm[0] = FloatToFp16(SearchSymmetricScale(x, wb, Group, levels.data(), kLevels));
      ChooseCodesSymmetric(x, Group, Fp16ToFloat(y[i].dm[0]), levels.data(), kLevels, codes);
    } else {
      float m;
      y[i].dm[0] = FloatToFp16(SearchAsymmetricScale(x, wb, Group, kHi, &m));
      y[i].dm[Symmetric ? 0 : 1] = FloatToFp16(m);
      ChooseCodesAsymmetric(x, Group, Fp16ToFloat(y[i].dm[0]), Fp16ToFloat(y[i].dm[Symmetric ? 0 : 1]), kHi, codes);
    }
    PackCodes(codes, Group, Bits, y[i].qs);
  }
}

template struct GroupInt<4, true, 32>;
template struct GroupInt<4, true, 64>;
template struct GroupInt<4, true, 128>;
template struct GroupInt<4, false, 32>;
template struct GroupInt<4, false, 64>;
template struct GroupInt<4, false, 128>;
template struct GroupInt<3, true, 32>;
template struct GroupInt<3, true, 64>;
template struct GroupInt<3, true, 128>;
template struct GroupInt<3, false, 32>;
template struct GroupInt<3, false, 64>;
template struct GroupInt<3, false, 128>;
template struct GroupInt<2, true, 32>;
template struct GroupInt<2, true, 64>;
template struct GroupInt<2, true, 128>;
template struct GroupInt<2, false, 32>;
template struct GroupInt<2, false, 64>;
template struct GroupInt<2, false, 128>;

}  // namespace smelt
