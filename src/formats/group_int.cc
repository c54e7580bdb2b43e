#include "formats/group_int.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "formats/bitpack.h"
#include "formats/q4_0.h"
#include "formats/q4_1.h"
#include "formats/quant_util.h"
#include "formats/scale_search.h"

namespace smelt {

template <int Bits, bool Symmetric>
void IntSpan<Bits, Symmetric>::Decode(const fp16_t* dm, const uint8_t* packed, int n, float* y) {
  const float d = Fp16ToFloat(dm[0]);
  const float m = Symmetric ? 0.0f : Fp16ToFloat(dm[Symmetric ? 0 : 1]);
  for (int j = 0; j < n; ++j) y[j] = d * (float)(UnpackCode(packed, j, Bits) + kLo) + m;
}

template <int Bits, bool Symmetric>
void IntSpan<Bits, Symmetric>::Encode(const float* x, int n, fp16_t* dm, uint8_t* codes) {
  float d, m = 0.0f;
  if constexpr (Symmetric) {
    float amax;
    d = SignedAbsMax(x, n, &amax) / (float)kLo;  // the extreme lands on the lowest level
    dm[0] = FloatToFp16(d);
  } else {
    float lo, hi;
    MinMax(x, n, &lo, &hi);
    dm[0] = FloatToFp16((hi - lo) / (float)kHi);
    dm[Symmetric ? 0 : 1] = FloatToFp16(lo);
    m = Fp16ToFloat(dm[Symmetric ? 0 : 1]);
  }
  // Codes for the scale as stored, so decoding is off by at most half a step.
  d = Fp16ToFloat(dm[0]);
  for (int j = 0; j < n; ++j) {
    const int q = d != 0.0f ? RoundToInt((x[j] - m) / d) : 0;
    codes[j] = (uint8_t)(std::clamp(q, kLo, kHi) - kLo);
  }
}

template <int Bits, bool Symmetric>
void IntSpan<Bits, Symmetric>::EncodeWeighted(const float* x, const float* w, int n, fp16_t* dm, uint8_t* codes) {
  static constexpr int kLevels = kHi - kLo + 1;
  static const auto levels = [] {
    std::array<float, kLevels> v;
    IntegerLevels(kLo, kHi, v.data());
    return v;
  }();
  std::vector<float> ones_heap;
  float ones_stack[256];
  float* ones = n <= 256 ? ones_stack : (ones_heap.resize(n), ones_heap.data());
  const float* wb = WeightsOrOnes(w, n, ones);
  if constexpr (Symmetric) {
    dm[0] = FloatToFp16(SearchSymmetricScale(x, wb, n, levels.data(), kLevels));
    ChooseCodesSymmetric(x, n, Fp16ToFloat(dm[0]), levels.data(), kLevels, codes);
  } else {
    float m;
    dm[0] = FloatToFp16(SearchAsymmetricScale(x, wb, n, kHi, &m));
    dm[Symmetric ? 0 : 1] = FloatToFp16(m);
    ChooseCodesAsymmetric(x, n, Fp16ToFloat(dm[0]), Fp16ToFloat(dm[Symmetric ? 0 : 1]), kHi, codes);
  }
}

template <int Bits, bool Symmetric, int Group>
void GroupInt<Bits, Symmetric, Group>::Dequantize(const Block* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / Group; ++i, y += Group) Span::Decode(x[i].dm, x[i].qs, Group, y);
}

template <int Bits, bool Symmetric, int Group>
void GroupInt<Bits, Symmetric, Group>::Quantize(const float* x, Block* y, int64_t k) {
  uint8_t codes[Group];
  for (int64_t i = 0; i < k / Group; ++i, x += Group) {
    Span::Encode(x, Group, y[i].dm, codes);
    PackCodes(codes, Group, Bits, y[i].qs);
  }
}

template <int Bits, bool Symmetric, int Group>
void GroupInt<Bits, Symmetric, Group>::QuantizeWeighted(const float* x, const float* w, Block* y, int64_t k) {
  uint8_t codes[Group];
  for (int64_t i = 0; i < k / Group; ++i, x += Group, w += Group) {
    Span::EncodeWeighted(x, w, Group, y[i].dm, codes);
    PackCodes(codes, Group, Bits, y[i].qs);
  }
}

template struct IntSpan<4, true>;
template struct IntSpan<4, false>;
template struct IntSpan<3, true>;
template struct IntSpan<3, false>;
template struct IntSpan<2, true>;
template struct IntSpan<2, false>;
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

namespace {

template <int Bits, bool Symmetric, int Group>
void RowAsGgml(const void* row, int64_t n, void* out) {
  using Block = BlockGroupInt<Bits, Symmetric, Group>;
  using Ggml = std::conditional_t<Symmetric, BlockQ4_0, BlockQ4_1>;
  // Q4_0's nibble is the signed level + 8; the symmetric codes store it + 2^(Bits − 1).
  constexpr int kShift = Symmetric ? 8 - (1 << (Bits - 1)) : 0;
  auto* blocks = static_cast<Ggml*>(out);
  for (int64_t g = 0; g < n / Group; ++g) {
    Block x;  // the row may sit at any offset of its file
    std::memcpy(&x, static_cast<const uint8_t*>(row) + g * sizeof(Block), sizeof x);
    for (int b = 0; b < Group / 32; ++b) {
      Ggml& y = blocks[g * (Group / 32) + b];
      y.d = x.dm[0];
      if constexpr (!Symmetric) y.m = x.dm[1];
      for (int j = 0; j < 16; ++j)
        y.qs[j] = (uint8_t)((UnpackCode(x.qs, 32 * b + j, Bits) + kShift) |
                            (UnpackCode(x.qs, 32 * b + j + 16, Bits) + kShift) << 4);
    }
  }
}

using RowAsGgmlFn = void (*)(const void*, int64_t, void*);
// In kGroupIntTypes' order.
constexpr RowAsGgmlFn kRowAsGgml[] = {
    RowAsGgml<4, true, 32>,  RowAsGgml<4, true, 64>,  RowAsGgml<4, true, 128>,
    RowAsGgml<4, false, 32>, RowAsGgml<4, false, 64>, RowAsGgml<4, false, 128>,
    RowAsGgml<3, true, 32>,  RowAsGgml<3, true, 64>,  RowAsGgml<3, true, 128>,
    RowAsGgml<3, false, 32>, RowAsGgml<3, false, 64>, RowAsGgml<3, false, 128>,
    RowAsGgml<2, true, 32>,  RowAsGgml<2, true, 64>,  RowAsGgml<2, true, 128>,
    RowAsGgml<2, false, 32>, RowAsGgml<2, false, 64>, RowAsGgml<2, false, 128>};

}  // namespace

void GroupIntRowAsGgml(DType type, const void* row, int64_t n, void* blocks) {
  SMELT_ASSERT(GroupIntGgmlType(type) != DType::kF32 && "not a group type");
  kRowAsGgml[(int)type - (int)DType::kI4S_G32](row, n, blocks);
}

}  // namespace smelt
