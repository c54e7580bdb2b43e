#include "formats/sparse24.h"

#include <algorithm>
#include <cmath>

#include "formats/quant_util.h"

namespace smelt {
namespace {

// The 16 kept values of a block of 32 and their positions in their groups: per group of 4 the
// two of largest magnitude (ties: the lower position), in position order.
void Select(const float* x, float* kept, uint8_t* idx) {
  std::fill(idx, idx + 4, 0);
  for (int g = 0; g < 8; ++g) {
    const float* v = x + 4 * g;
    int a = 0;  // the largest
    for (int i = 1; i < 4; ++i)
      if (std::fabs(v[i]) > std::fabs(v[a])) a = i;
    int b = a == 0 ? 1 : 0;  // the largest of the others
    for (int i = 0; i < 4; ++i)
      if (i != a && std::fabs(v[i]) > std::fabs(v[b])) b = i;
    const int p[2] = {std::min(a, b), std::max(a, b)};
    for (int j = 0; j < 2; ++j) {
      const int k = 2 * g + j;
      kept[k] = v[p[j]];
      idx[k % 4] |= (uint8_t)(p[j] << (2 * (k / 4)));
    }
  }
}

// y[32] = Σ over kept values of d · code at its position (two values naming one position add).
template <class Block>
void DecodeBlock(const Block& b, float* y) {
  const float d = Fp16ToFloat(b.d);
  std::fill(y, y + kQKS24, 0.0f);
  for (int k = 0; k < 16; ++k) y[S24Position(b.idx, k)] += d * (float)S24Code(b, k);
}

}  // namespace

void DequantizeRowS24Q8(const BlockS24Q8* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKS24; ++i) DecodeBlock(x[i], y + i * kQKS24);
}

void DequantizeRowS24Q4(const BlockS24Q4* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKS24; ++i) DecodeBlock(x[i], y + i * kQKS24);
}

void QuantizeRowS24Q8(const float* x, BlockS24Q8* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKS24; ++i) {
    float kept[16];
    Select(x + i * kQKS24, kept, y[i].idx);
    float amax;
    SignedAbsMax(kept, 16, &amax);
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = FloatToFp16(d);
    for (int k = 0; k < 16; ++k) y[i].qs[k] = (int8_t)std::clamp(RoundToInt(kept[k] * id), -127, 127);
  }
}

void QuantizeRowS24Q4(const float* x, BlockS24Q4* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKS24; ++i) {
    float kept[16], amax;
    Select(x + i * kQKS24, kept, y[i].idx);
    const float max = SignedAbsMax(kept, 16, &amax);
    const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = FloatToFp16(d);
    uint8_t c[16];
    for (int k = 0; k < 16; ++k) c[k] = (uint8_t)std::clamp(RoundToInt(kept[k] * id) + 8, 0, 15);
    for (int k = 0; k < 8; ++k) y[i].qs[k] = (uint8_t)(c[k] | c[k + 8] << 4);
  }
}

}  // namespace smelt
