#include "formats/weighted_quants.h"

#include <array>
#include <cstring>

#include "formats/quant_util.h"
#include "formats/scale_search.h"

namespace smelt {
namespace {

constexpr int kBlock = 32;  // every format here has 32-value blocks

// Symmetric formats with levels v[0..n): d (as stored in fp16) and the codes for that d.
float SymmetricBlock(const float* x, const float* w, const float* levels, int n_levels, uint8_t* codes) {
  std::array<float, kBlock> ones;
  const float d = SearchSymmetricScale(x, WeightsOrOnes(w, kBlock, ones.data()), kBlock, levels, n_levels);
  const float d16 = Fp16ToFloat(FloatToFp16(d));
  ChooseCodesSymmetric(x, kBlock, d16, levels, n_levels, codes);
  return d;
}

// Asymmetric formats with codes 0..qmax: d and m (stored in fp16) and the codes for them.
void AsymmetricBlock(const float* x, const float* w, int qmax, float* d, float* m, uint8_t* codes) {
  std::array<float, kBlock> ones;
  *d = SearchAsymmetricScale(x, WeightsOrOnes(w, kBlock, ones.data()), kBlock, qmax, m);
  ChooseCodesAsymmetric(x, kBlock, Fp16ToFloat(FloatToFp16(*d)), Fp16ToFloat(FloatToFp16(*m)), qmax, codes);
}

// Nibble packing shared by Q4_0/Q4_1/Q5_x/IQ4_NL: weight j low, weight j+16 high.
void PackNibbles(const uint8_t* codes, uint8_t* qs) {
  for (int j = 0; j < kBlock / 2; ++j) qs[j] = (uint8_t)((codes[j] & 0x0f) | ((codes[j + kBlock / 2] & 0x0f) << 4));
}

// Q5's fifth bits: weight j at bit j (formats/q5_0.h).
void PackHighBits(const uint8_t* codes, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < kBlock; ++j) h |= (uint32_t)((codes[j] >> 4) & 1) << j;
  StoreQh(h, qh);
}

// A 4- or 5-bit block's codes: the low nibbles, and the fifth bits where the block has them.
template <class Block>
void PackCodes(const uint8_t* codes, Block& b) {
  PackNibbles(codes, b.qs);
  if constexpr (requires { b.qh; }) PackHighBits(codes, b.qh);
}

// Q4_1 / Q5_1 (codes 0..kQmax): per block d, m and the codes of AsymmetricBlock.
template <class Block, int kQmax>
void QuantizeRowAsymmetricWeighted(const float* x, const float* w, Block* y, int64_t k) {
  uint8_t codes[kBlock];
  for (int64_t i = 0; i < k / kBlock; ++i, x += kBlock, w += kBlock) {
    float d, m;
    AsymmetricBlock(x, w, kQmax, &d, &m, codes);
    y[i].d = FloatToFp16(d), y[i].m = FloatToFp16(m);
    PackCodes(codes, y[i]);
  }
}

struct Levels {
  float v[256];
  int n;
  Levels(int lo, int hi) : n(hi - lo + 1) { IntegerLevels(lo, hi, v); }
};

}  // namespace

void QuantizeRowQ4_0Weighted(const float* x, const float* w, BlockQ4_0* y, int64_t k) {
  static const Levels levels(-8, 7);
  uint8_t codes[kBlock];
  for (int64_t i = 0; i < k / kBlock; ++i, x += kBlock, w += kBlock) {
    y[i].d = FloatToFp16(SymmetricBlock(x, w, levels.v, levels.n, codes));
    PackNibbles(codes, y[i].qs);  // index into -8..7 is the stored code
  }
}

void QuantizeRowQ5_0Weighted(const float* x, const float* w, BlockQ5_0* y, int64_t k) {
  static const Levels levels(-16, 15);
  uint8_t codes[kBlock];
  for (int64_t i = 0; i < k / kBlock; ++i, x += kBlock, w += kBlock) {
    y[i].d = FloatToFp16(SymmetricBlock(x, w, levels.v, levels.n, codes));
    PackCodes(codes, y[i]);
  }
}

void QuantizeRowQ8_0Weighted(const float* x, const float* w, BlockQ8_0* y, int64_t k) {
  static const Levels levels(-127, 127);
  uint8_t codes[kBlock];
  for (int64_t i = 0; i < k / kBlock; ++i, x += kBlock, w += kBlock) {
    y[i].d = FloatToFp16(SymmetricBlock(x, w, levels.v, levels.n, codes));
    for (int j = 0; j < kBlock; ++j) y[i].qs[j] = (int8_t)(codes[j] - 127);
  }
}

void QuantizeRowQ4_1Weighted(const float* x, const float* w, BlockQ4_1* y, int64_t k) {
  QuantizeRowAsymmetricWeighted<BlockQ4_1, 15>(x, w, y, k);
}

void QuantizeRowQ5_1Weighted(const float* x, const float* w, BlockQ5_1* y, int64_t k) {
  QuantizeRowAsymmetricWeighted<BlockQ5_1, 31>(x, w, y, k);
}

void QuantizeRowIQ4_NLWeighted(const float* x, const float* w, BlockIQ4_NL* y, int64_t k) {
  static const auto levels = [] {
    std::array<float, 16> v;
    for (int j = 0; j < 16; ++j) v[j] = kIQ4NLValues[j];
    return v;
  }();
  uint8_t codes[kBlock];
  for (int64_t i = 0; i < k / kBlock; ++i, x += kBlock, w += kBlock) {
    y[i].d = FloatToFp16(SymmetricBlock(x, w, levels.data(), 16, codes));
    PackNibbles(codes, y[i].qs);
  }
}

}  // namespace smelt
