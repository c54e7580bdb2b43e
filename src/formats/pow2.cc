#include "formats/pow2.h"

#include <array>
#include <cmath>

#include "formats/bitpack.h"
#include "formats/quant_util.h"
#include "formats/scale_search.h"

namespace smelt {

float Pow2Level(uint8_t c) {
  const int k = c & 7;
  if (k == kPow2ZeroCode) return 0.0f;
  return std::ldexp((c & 8) ? -1.0f : 1.0f, -k);
}

namespace {

// The 15 distinct levels sorted ascending (for the nearest-level search), and each one's code.
struct SortedLevels {
  std::array<float, 15> value;
  std::array<uint8_t, 15> code;
};
constexpr SortedLevels MakeSortedLevels() {
  SortedLevels s{};
  int n = 0;
  for (int k = 0; k <= kPow2MaxShift; ++k) s.value[n] = -1.0f / (float)(1 << k), s.code[n++] = (uint8_t)(8 | k);
  s.value[n] = 0.0f, s.code[n++] = kPow2ZeroCode;
  for (int k = kPow2MaxShift; k >= 0; --k) s.value[n] = 1.0f / (float)(1 << k), s.code[n++] = (uint8_t)k;
  return s;
}
constexpr SortedLevels kLevels = MakeSortedLevels();

// Codes of x[0..32) for the (stored) scale d, packed into qs.
void EncodeBlock(const float* x, float d, uint8_t* qs) {
  uint8_t idx[kQKPow2], codes[kQKPow2];
  ChooseCodesSymmetric(x, kQKPow2, d, kLevels.value.data(), (int)kLevels.value.size(), idx);
  for (int j = 0; j < kQKPow2; ++j) codes[j] = kLevels.code[idx[j]];
  PackCodes(codes, kQKPow2, 4, qs);
}

}  // namespace

void DequantizeRowPow2(const BlockPow2* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / kQKPow2; ++i, y += kQKPow2) {
    const float d = Fp16ToFloat(x[i].d);
    for (int j = 0; j < kQKPow2; ++j) y[j] = d * Pow2Level(UnpackCode(x[i].qs, j, 4));
  }
}

void QuantizeRowPow2(const float* x, BlockPow2* y, int64_t k) {
  for (int64_t i = 0; i < k / kQKPow2; ++i, x += kQKPow2) {
    float amax;
    SignedAbsMax(x, kQKPow2, &amax);
    y[i].d = FloatToFp16(amax);
    EncodeBlock(x, Fp16ToFloat(y[i].d), y[i].qs);
  }
}

void QuantizeRowPow2Weighted(const float* x, const float* w, BlockPow2* y, int64_t k) {
  float ones[kQKPow2];
  for (int64_t i = 0; i < k / kQKPow2; ++i, x += kQKPow2, w += kQKPow2) {
    const float d = SearchSymmetricScale(x, WeightsOrOnes(w, kQKPow2, ones), kQKPow2, kLevels.value.data(),
                                         (int)kLevels.value.size());
    y[i].d = FloatToFp16(d);
    EncodeBlock(x, Fp16ToFloat(y[i].d), y[i].qs);
  }
}

}  // namespace smelt
