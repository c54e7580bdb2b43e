#include "formats/nf4.h"

#include "formats/bitpack.h"
#include "formats/quant_util.h"
#include "formats/scale_search.h"

namespace smelt {

void DequantizeRowNF4(const BlockNF4* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / kQKNF4; ++i, y += kQKNF4) {
    const float d = Fp16ToFloat(x[i].d);
    for (int j = 0; j < kQKNF4; ++j) y[j] = d * kNF4Values[UnpackCode(x[i].qs, j, 4)];
  }
}

void QuantizeRowNF4(const float* x, BlockNF4* y, int64_t k) {
  uint8_t codes[kQKNF4];
  for (int64_t i = 0; i < k / kQKNF4; ++i, x += kQKNF4) {
    float amax;
    SignedAbsMax(x, kQKNF4, &amax);
    y[i].d = FloatToFp16(amax);
    ChooseCodesSymmetric(x, kQKNF4, Fp16ToFloat(y[i].d), kNF4Values, 16, codes);
    PackCodes(codes, kQKNF4, 4, y[i].qs);
  }
}

void QuantizeRowNF4Weighted(const float* x, const float* w, BlockNF4* y, int64_t k) {
  uint8_t codes[kQKNF4];
  float ones[kQKNF4];
  for (int64_t i = 0; i < k / kQKNF4; ++i, x += kQKNF4, w += kQKNF4) {
    const float d = SearchSymmetricScale(x, WeightsOrOnes(w, kQKNF4, ones), kQKNF4, kNF4Values, 16);
    y[i].d = FloatToFp16(d);
    ChooseCodesSymmetric(x, kQKNF4, Fp16ToFloat(y[i].d), kNF4Values, 16, codes);
    PackCodes(codes, kQKNF4, 4, y[i].qs);
  }
}

}  // namespace smelt
