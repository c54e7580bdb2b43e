#include "formats/per_channel.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "formats/bitpack.h"
#include "formats/group_int.h"
#include "formats/quant_util.h"
#include "formats/scale_search.h"

namespace smelt {

void DequantizeRowI8PC(const void* row, float* y, int64_t n) {
  RowHeaderI8 h;
  std::memcpy(&h, row, sizeof(h));
  const int8_t* q = reinterpret_cast<const int8_t*>(static_cast<const uint8_t*>(row) + sizeof(h));
  for (int64_t j = 0; j < n; ++j) y[j] = h.d * (float)q[j];
}

namespace {

void WriteI8Row(float d, const float* x, int64_t n, void* row) {
  const RowHeaderI8 h{d};
  std::memcpy(row, &h, sizeof(h));
  int8_t* q = reinterpret_cast<int8_t*>(static_cast<uint8_t*>(row) + sizeof(h));
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int64_t j = 0; j < n; ++j) q[j] = (int8_t)std::clamp(RoundToInt(x[j] * id), -127, 127);
}

}  // namespace

void QuantizeRowI8PC(const float* x, void* row, int64_t n) {
  float amax;
  SignedAbsMax(x, n, &amax);
  WriteI8Row(amax / 127.0f, x, n, row);
}

void QuantizeRowI8PCWeighted(const float* x, const float* w, void* row, int64_t n) {
  static const auto levels = [] {
    std::array<float, 255> v;
    IntegerLevels(-127, 127, v.data());
    return v;
  }();
  std::vector<float> ones(n);
  const float d = SearchSymmetricScale(x, WeightsOrOnes(w, (int)n, ones.data()), (int)n, levels.data(), 255);
  WriteI8Row(d, x, n, row);
}

template <int Bits, bool Symmetric>
void RowInt<Bits, Symmetric>::Dequantize(const void* row, float* y, int64_t n) {
  RowHeaderInt<Symmetric> h;
  std::memcpy(&h, row, kHeader);
  IntSpan<Bits, Symmetric>::Decode(h.dm, static_cast<const uint8_t*>(row) + kHeader, (int)n, y);
}

template <int Bits, bool Symmetric>
void RowInt<Bits, Symmetric>::Quantize(const float* x, void* row, int64_t n) {
  RowHeaderInt<Symmetric> h;
  std::vector<uint8_t> codes(n);
  IntSpan<Bits, Symmetric>::Encode(x, (int)n, h.dm, codes.data());
  std::memcpy(row, &h, kHeader);
  PackCodes(codes.data(), (int)n, Bits, static_cast<uint8_t*>(row) + kHeader);
}

template <int Bits, bool Symmetric>
void RowInt<Bits, Symmetric>::QuantizeWeighted(const float* x, const float* w, void* row, int64_t n) {
  RowHeaderInt<Symmetric> h;
  std::vector<uint8_t> codes(n);
  IntSpan<Bits, Symmetric>::EncodeWeighted(x, w, (int)n, h.dm, codes.data());
  std::memcpy(row, &h, kHeader);
  PackCodes(codes.data(), (int)n, Bits, static_cast<uint8_t*>(row) + kHeader);
}

template struct RowInt<4, true>;
template struct RowInt<4, false>;
template struct RowInt<3, true>;
template struct RowInt<3, false>;
template struct RowInt<2, true>;
template struct RowInt<2, false>;

}  // namespace smelt
